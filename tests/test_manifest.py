import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from image_gen_local.errors import ExitCode, OutputError, UsageError
from image_gen_local.manifest import Manifest


def test_append_writes_one_json_line_per_record_with_a_time(tmp_path):
    manifest = Manifest(tmp_path / "sub" / "batch.manifest.jsonl")  # the folder is made on first write
    before = time.time()
    manifest.append({"type": "picture", "job": "k-1", "path": "/x.png", "prompt": "café ☕"})
    manifest.append({"type": "job", "job": "k-1", "ok": True})
    manifest.close()
    text = manifest.path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [record["type"] for record in records] == ["picture", "job"]
    assert records[0]["prompt"] == "café ☕"
    for record in records:
        assert isinstance(record["time"], float)
        assert before - 1 <= record["time"] <= time.time() + 1
    assert list(manifest.records()) == records


def test_append_after_close_reopens_and_appends(tmp_path):
    manifest = Manifest(tmp_path / "m.jsonl")
    manifest.append({"n": 1})
    manifest.close()
    manifest.close()  # twice is harmless
    manifest.append({"n": 2})
    manifest.close()
    assert [record["n"] for record in Manifest(tmp_path / "m.jsonl").records()] == [1, 2]


def test_records_skip_a_damaged_last_line_and_lines_that_are_not_objects(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"time": 1, "n": 1}\n'
        "[1, 2]\n"
        '"a string"\n'
        "42\n"
        "\n"
        "null\n"
        '{"time": 2, "n": 2}\n'
        '{"time": 3, "type": "pic',  # the kill came mid-write
        encoding="utf-8",
    )
    records = Manifest(path).records()
    assert not isinstance(records, list)  # streamed
    assert [record["n"] for record in records] == [1, 2]


def test_a_missing_manifest_yields_nothing(tmp_path):
    manifest = Manifest(tmp_path / "nowhere" / "m.jsonl")
    assert list(manifest.records()) == []
    assert manifest.done() == {}
    assert not manifest.path.exists()


def test_done_counts_only_pictures_still_on_disk(tmp_path):
    pictures = [tmp_path / f"p{i}.png" for i in range(4)]
    for picture in pictures[:3]:
        picture.write_bytes(b"png")
    manifest = Manifest(tmp_path / "m.jsonl")
    manifest.append({"type": "picture", "job": "a-1", "path": str(pictures[0])})
    manifest.append({"type": "picture", "job": "a-1", "path": str(pictures[1])})
    manifest.append({"type": "job", "job": "a-1", "path": str(pictures[0])})  # not a picture record
    manifest.append({"type": "picture", "job": "b-1", "path": str(pictures[2])})
    manifest.append({"type": "picture", "job": "c-1", "path": str(pictures[3])})  # never saved
    manifest.append({"type": "picture", "job": "d-1", "path": str(tmp_path)})  # a folder, not a file
    manifest.append({"type": "picture", "job": "e-1", "path": 7})  # not a path
    manifest.append({"type": "picture", "job": "f-1"})  # no path
    manifest.close()
    assert manifest.done() == {"a-1": [str(pictures[0]), str(pictures[1])], "b-1": [str(pictures[2])]}

    pictures[1].unlink()
    assert manifest.done() == {"a-1": [str(pictures[0])], "b-1": [str(pictures[2])]}
    pictures[2].unlink()
    assert manifest.done() == {"a-1": [str(pictures[0])]}


def test_appends_from_many_threads_give_whole_lines(tmp_path):
    manifest = Manifest(tmp_path / "m.jsonl")
    threads_count, per_thread = 8, 25
    start = threading.Barrier(threads_count)

    def work(worker: int) -> None:
        start.wait()
        for n in range(per_thread):
            manifest.append({"type": "picture", "worker": worker, "n": n, "prompt": "x" * 500})

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    manifest.close()
    lines = manifest.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == threads_count * per_thread
    records = [json.loads(line) for line in lines]  # every line is whole
    assert sorted((r["worker"], r["n"]) for r in records) == [
        (worker, n) for worker in range(threads_count) for n in range(per_thread)
    ]
    for worker in range(threads_count):  # each thread's own records stay in order
        assert [r["n"] for r in records if r["worker"] == worker] == list(range(per_thread))


def test_an_unwritable_manifest_raises_output_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    manifest = Manifest(blocker / "m.jsonl")
    with pytest.raises(OutputError) as caught:
        manifest.append({"type": "job"})
    assert caught.value.exit_code is ExitCode.OUTPUT
    assert str(blocker / "m.jsonl") in str(caught.value)
    assert caught.value.fix
    with pytest.raises(OutputError):  # and again: no half-open handle is left behind
        manifest.append({"type": "job"})
    manifest.close()


def test_a_rerun_after_a_damaged_last_line_keeps_its_first_record(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"time": 1, "n": 1}\n{"time": 2, "type": "pic', encoding="utf-8")
    manifest = Manifest(path)
    manifest.append({"n": 2})
    manifest.append({"n": 3})
    manifest.close()
    assert [record["n"] for record in manifest.records()] == [1, 2, 3]


def test_a_damaged_last_line_cut_inside_a_utf8_character_is_skipped(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"time": 1, "n": 1}\n{"time": 2, "prompt": "caf' + "é".encode()[:1])
    assert [record["n"] for record in Manifest(path).records()] == [1]


# Claiming the manifest: whole lines, repair, refusal, lock (issue 9, the local machine fails too)


def append_until_full(path, limit: int) -> subprocess.CompletedProcess:
    """A child process that appends records under RLIMIT_FSIZE until the 'disk' refuses, like a full disk."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from image_gen_local.errors import OutputError\n"
        "from image_gen_local.manifest import Manifest\n"
        "m = Manifest(Path(sys.argv[1]))\n"
        "for n in range(10_000):\n"
        "    try:\n"
        "        m.append({'type': 'picture', 'n': n, 'prompt': 'x' * 300})\n"
        "    except OutputError as exc:\n"
        "        print(n, int(exc.exit_code), exc)\n"
        "        break\n"
    )

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), no signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size,
    )


def test_a_write_the_disk_cuts_short_leaves_only_whole_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    child = append_until_full(path, 10_000)
    appended, code, message = child.stdout.split(" ", 2)
    assert int(appended) > 5 and code == "9", child.stdout
    assert "cannot write the manifest" in message and child.stderr == ""
    data = path.read_bytes()
    assert data.endswith(b"\n") and len(data) <= 10_000
    assert [json.loads(line)["n"] for line in data.splitlines()] == list(range(int(appended)))


def test_a_last_line_cut_by_a_kill_is_dropped_with_a_note_and_later_lines_are_valid(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"time": 1, "n": 1}\n{"time": 2, "n": 2}\n{"time": 3, "type": "pic')
    manifest = Manifest(path)
    note = manifest.open()
    assert note is not None and "last line" in note and "dropped" in note
    assert path.read_bytes() == b'{"time": 1, "n": 1}\n{"time": 2, "n": 2}\n'
    manifest.append({"n": 3})
    manifest.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2, 3]
    assert Manifest(path).open() is None  # nothing to repair the second time


def test_a_manifest_whose_only_line_was_cut_is_emptied(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"time": 3, "type": "picture", "path": "/x.pn')
    manifest = Manifest(path)
    assert manifest.open() is not None
    manifest.close()
    assert path.read_bytes() == b""


def test_a_tail_of_zeros_from_a_power_cut_is_dropped(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"time": 1, "n": 1}\n' + b"\0" * 4096)
    manifest = Manifest(path)
    assert manifest.open() is not None
    manifest.append({"n": 2})
    manifest.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize(
    "content",
    [
        b"a fox in the snow\na blue whale\n",  # a job file (plain text)
        b'{"prompt": "a fox", "aspect_ratio": "16:9"}\n',  # a job file (JSONL)
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,  # a picture
        b"[1, 2, 3]\n",
    ],
)
def test_a_file_that_is_not_a_manifest_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "notes.jsonl"
    path.write_bytes(content)
    manifest = Manifest(path)
    with pytest.raises(UsageError) as caught:
        manifest.open()
    assert caught.value.exit_code is ExitCode.USAGE and "not a batch manifest" in str(caught.value)
    assert "--manifest" in caught.value.fix
    with pytest.raises(UsageError):
        manifest.append({"type": "job"})
    assert path.read_bytes() == content


def test_an_empty_file_and_a_blank_one_are_manifests(tmp_path):
    for content in (b"", b"\n\n"):
        path = tmp_path / "m.jsonl"
        path.write_bytes(content)
        manifest = Manifest(path)
        assert manifest.open() is None
        manifest.append({"n": 1})
        manifest.close()
        assert [r["n"] for r in manifest.records()] == [1]
        path.unlink()


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full", "/dev/zero"])
def test_a_device_is_not_a_manifest(device):
    manifest = Manifest(Path(device))
    with pytest.raises(OutputError, match="not a regular file"):
        manifest.open()
    with pytest.raises(OutputError, match="not a regular file"):
        list(manifest.records())  # /dev/zero would never end


def test_a_folder_is_not_a_manifest(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        Manifest(tmp_path).open()


@pytest.mark.skipif(shutil.which("chattr") is None or os.geteuid() != 0, reason="needs chattr and root")
def test_an_immutable_manifest_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"time": 1, "n": 1}\n')
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable flag")
    try:
        with pytest.raises(OutputError) as caught:
            Manifest(path).open()
        assert caught.value.exit_code is ExitCode.OUTPUT and "cannot write the manifest" in str(caught.value)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert path.read_text() == '{"time": 1, "n": 1}\n'


def test_a_second_claim_is_refused_naming_the_process_that_holds_it(tmp_path):
    path = tmp_path / "m.jsonl"
    first = Manifest(path)
    assert first.open() is None
    second = Manifest(path)
    with pytest.raises(OutputError) as caught:
        second.open()
    message = str(caught.value)
    assert caught.value.exit_code is ExitCode.OUTPUT
    assert f"another batch is running on this manifest (pid {os.getpid()})" in message
    assert "--manifest" in message
    first.close()  # the lock goes with the file
    assert second.open() is None
    second.close()


def test_the_lock_is_held_by_another_process_until_it_ends(tmp_path):
    path = tmp_path / "m.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from image_gen_local.manifest import Manifest\n"
            "m = Manifest(pathlib.Path(sys.argv[1])); m.open(); print('held', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(OutputError, match=rf"\(pid {holder.pid}\)"):
            Manifest(path).open()
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock with the process
        holder.wait(timeout=10)
    manifest = Manifest(path)
    assert manifest.open() is None
    manifest.close()
