import json
import threading
import time

import pytest

from image_gen_local.errors import ExitCode, OutputError
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
