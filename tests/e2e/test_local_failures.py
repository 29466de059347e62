"""The local machine fails too: a manifest that cannot be written, a full disk, two batches at once, a job
file with a byte order mark, closed streams, huge stdin, kills mid-save. Each against real files and real
processes (`scripts/gen.py` as the skill runs it), the emulator as the server."""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers import (
    ROOT,
    FolderWatch,
    can_deny_syscalls,
    deny_syscalls,
    markers,
    picture,
    run_script,
    start_script,
    wait_until,
)
from image_gen_local.emulator import Reply
from image_gen_local.files import TEMP_PREFIX, TEMP_SUFFIX


def env_for(emu, out: Path) -> dict[str, str]:
    return {"IMAGE_GEN_BASE_URL": emu.root_url, "IMAGE_GEN_OUTPUT_DIR": str(out)}


def write_lines(path: Path, lines: list[str], bom: bool = False) -> Path:
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def generations(emu) -> int:
    return sum(1 for r in emu.requests if r.route == "generations" and r.status == 200)


def prefilled_manifest(path: Path, size: int) -> Path:
    """A real manifest (records of other jobs) just under `size` bytes: the next few lines will not fit."""
    lines, used = [], 0
    while True:
        line = json.dumps({"time": 1.0, "type": "job", "job": f"old-{len(lines)}", "status": "ok"}) + "\n"
        if used + len(line) > size - 200:
            break
        lines.append(line)
        used += len(line)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def whole_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the manifest ends mid-line"
    return [json.loads(line) for line in data.splitlines()]


def check_unwritable_manifest_run(run: subprocess.CompletedProcess, out: Path, manifest: Path) -> None:
    """Exit 9, one error line naming the manifest, no traceback; every saved picture has its marker line."""
    assert run.returncode == 9, run.stderr
    assert "Traceback" not in run.stderr and "Exception in thread" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot write the manifest" in errors[0], run.stderr
    saved = sorted(out.glob("*.png"))
    assert saved, "the batch stopped before any picture: the test proves nothing"
    assert sorted(markers(run.stdout)) == saved
    for path in saved:
        picture(path)
    recorded = {r["path"] for r in whole_lines(manifest) if r.get("type") == "picture"}
    assert recorded <= {str(p) for p in saved}
    assert not [p for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_manifest_that_stops_growing_ends_the_batch_with_exit_9_and_one_line(emulator, tmp_path):
    """RLIMIT_FSIZE in the child: the pictures (~130 KB) fit, the manifest's next lines do not. Before the
    fix the workers died with tracebacks and the batch never ended (40 jobs fill the bounded queue)."""
    limit = 300 * 1024
    manifest = prefilled_manifest(tmp_path / "m.jsonl", limit)
    jobs = write_lines(tmp_path / "jobs.txt", [f"a full disk {i}" for i in range(40)])
    out = tmp_path / "out"

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = env_for(emulator, out)
    run = run_script("batch", str(jobs), "--manifest", str(manifest), env=env, preexec_fn=limit_file_size)
    check_unwritable_manifest_run(run, out, manifest)
    assert generations(emulator) < 40  # it stopped instead of paying for pictures it cannot record


@pytest.fixture
def tiny_disk(tmp_path):
    """A real full disk: a 256 KiB tmpfs (needs root and permission to mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    command = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave: int = 4096) -> Path:
    """Fill a disk, then free `leave` bytes (one page: room for a few manifest lines, not a picture)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, filler.stat().st_size - leave)
    return filler


def test_a_manifest_on_a_full_disk_ends_the_batch_with_exit_9_and_one_line(emulator, tmp_path, tiny_disk):
    manifest = tiny_disk / "m.jsonl"
    fill(tiny_disk)
    jobs = write_lines(tmp_path / "jobs.txt", [f"no space {i}" for i in range(40)])
    out = tmp_path / "out"
    run = run_script("batch", str(jobs), "--manifest", str(manifest), env=env_for(emulator, out))
    check_unwritable_manifest_run(run, out, manifest)
    assert "disk is full" in run.stderr


@pytest.mark.parametrize("command", ["generate", "batch"])
def test_pictures_on_a_full_disk_end_with_exit_9_and_leave_nothing(emulator, tmp_path, tiny_disk, command):
    filler = fill(tiny_disk)
    env = env_for(emulator, tiny_disk)
    if command == "generate":
        run = run_script("no room", env=env)
    else:
        run = run_script("batch", str(write_lines(tmp_path / "jobs.txt", ["a", "b", "c", "d"])), env=env)
    assert run.returncode == 9 and run.stdout == "", run.stderr
    assert "Traceback" not in run.stderr and "is full" in run.stderr
    if command == "generate":
        assert len(error_lines(run.stderr)) == 1
    else:  # the summary, then each failed job (the disk is full for those already in flight too)
        assert "0 of 4 job(s) done" in run.stderr and "failed: line 1" in run.stderr
    left = sorted(p.name for p in tiny_disk.iterdir() if p != filler)
    assert left == ([] if command == "generate" else ["jobs.manifest.jsonl"])
    if command == "batch":
        whole_lines(tiny_disk / "jobs.manifest.jsonl")


@pytest.mark.parametrize("blocked", ["under-a-file", "immutable-file", "immutable-folder"])
def test_a_manifest_that_cannot_be_written_costs_nothing(emulator, tmp_path, blocked):
    """Detected when the manifest is claimed, before any request (root ignores permission bits, so the
    tests block writing by other means: a path under a file, `chattr +i` on the file or its folder)."""
    jobs = write_lines(tmp_path / "jobs.txt", ["one", "two"])
    locked: Path | None = None
    if blocked == "under-a-file":
        (tmp_path / "a-file").write_text("")
        manifest = tmp_path / "a-file" / "m.jsonl"
    elif blocked == "immutable-file":
        manifest = locked = tmp_path / "m.jsonl"
        manifest.write_text("")
    else:
        locked = tmp_path / "records"
        locked.mkdir()
        manifest = locked / "m.jsonl"
    if locked is not None and subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        env = env_for(emulator, tmp_path / "out")
        run = run_script("batch", str(jobs), "--manifest", str(manifest), env=env)
    finally:
        if locked is not None:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert run.returncode == 9 and run.stdout == "", run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "cannot write the manifest" in run.stderr
    assert generations(emulator) == 0


@pytest.mark.parametrize("kind", ["job file", "other file"])
def test_a_manifest_option_naming_a_file_that_is_not_a_manifest_is_refused(emulator, tmp_path, kind):
    jobs = write_lines(tmp_path / "jobs.jsonl", ['{"prompt": "a fox"}', "a whale"])
    target = jobs if kind == "job file" else write_lines(tmp_path / "notes.txt", ["my notes"])
    before = target.read_bytes()
    run = run_script("batch", str(jobs), "--manifest", str(target), env=env_for(emulator, tmp_path / "out"))
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert ("is the job file itself" if kind == "job file" else "not a batch manifest") in run.stderr
    assert "--manifest" in run.stderr
    assert target.read_bytes() == before and generations(emulator) == 0


def test_two_batches_on_the_same_job_file_do_not_both_pay(make_emulator, tmp_path):
    """Before the lock, two batches started together made 40 pictures for 20 jobs."""
    emu = make_emulator(latency=0.3)
    jobs = write_lines(tmp_path / "twins.txt", [f"twin {i}" for i in range(20)])
    env = env_for(emu, tmp_path / "out")
    first = start_script("batch", str(jobs), env=env)
    wait_until(lambda: generations(emu) >= 1)
    second = run_script("batch", str(jobs), env=env)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert second.returncode == 9 and second.stdout == ""
    assert f"another batch is running on this manifest (pid {first.pid})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert len(markers(stdout)) == 20 and generations(emu) == 20
    again = run_script("batch", str(jobs), env=env)  # the lock went with the first process
    assert again.returncode == 0 and len(markers(again.stdout)) == 20 and generations(emu) == 20


def test_a_manifest_line_cut_by_a_kill_is_repaired_on_resume(emulator, tmp_path):
    jobs = write_lines(tmp_path / "jobs.txt", ["one", "two", "three"])
    out = tmp_path / "out"
    env = env_for(emulator, out)
    assert run_script("batch", str(jobs), env=env).returncode == 0
    manifest = out / "jobs.manifest.jsonl"
    data = manifest.read_bytes()
    manifest.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1] + b'{"time": 9, "type": "pict')
    run = run_script("batch", str(jobs), env=env)
    assert run.returncode == 0, run.stderr
    assert "last line was left unfinished" in run.stderr and "dropped" in run.stderr
    assert len(markers(run.stdout)) == 3
    whole_lines(manifest)  # every line parses: the rerun's lines did not glue onto the cut one


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_jsonl_job_file_with_a_byte_order_mark_keeps_its_first_lines_options(emulator, tmp_path, source):
    lines = [
        '{"prompt": "a wide fox", "aspect_ratio": "16:9"}',
        '{"prompt": "a tall fox", "aspect_ratio": "9:16"}',
    ]
    jobs = write_lines(tmp_path / "story.jsonl", lines, bom=True)
    assert jobs.read_bytes().startswith(b"\xef\xbb\xbf{")
    env = env_for(emulator, tmp_path / "out")
    if source == "file":
        run = run_script("batch", str(jobs), env=env)
    else:
        run = run_script("batch", "-", env=env, input=jobs.read_text(encoding="utf-8"))
    assert run.returncode == 0, run.stderr
    sizes = sorted(picture(path).size for path in markers(run.stdout))
    assert sizes == [(768, 1376), (1376, 768)]
    prompts = sorted(r.body["prompt"] for r in emulator.requests if r.route == "generations")
    assert prompts == ["a tall fox", "a wide fox"]


# Pictures on a filesystem without hard links; temporary files after kills (files.py)

no_links_here = pytest.mark.skipif(not can_deny_syscalls(), reason="needs Linux seccomp on x86_64 or aarch64")


@no_links_here
@pytest.mark.parametrize("exclusive_rename", [True, False], ids=["renameat2", "check-then-rename"])
def test_without_hard_links_a_picture_never_appears_empty_or_partial(emulator, tmp_path, exclusive_rename):
    """The child's kernel refuses link(2), as FAT, exFAT or an SMB share would (and, in the second case,
    renameat2 too). inotify then shows whether a final name was ever open for writing: before the fix the
    fallback created the name empty and moved the picture over it, so a reader (or a kill between the two
    steps) saw a 0-byte picture."""
    denied = {"link": errno.EPERM, "linkat": errno.EPERM}
    if not exclusive_rename:
        denied["renameat2"] = errno.ENOSYS
    out = tmp_path / "out"
    out.mkdir()
    watch = FolderWatch(out)
    env = env_for(emulator, out)

    def no_links() -> None:
        deny_syscalls(denied)

    run = run_script("same name", "-n", "3", env=env, preexec_fn=no_links)
    assert run.returncode == 0, run.stderr
    again = run_script("exact", "-o", str(out / "exact.png"), env=env, preexec_fn=no_links)
    assert again.returncode == 0, again.stderr
    events = watch.events()
    pictures = sorted(out.iterdir())
    assert [p.name for p in pictures][-1] == "exact.png" and len(pictures) == 4
    for path in pictures:
        picture(path)
    finals = {p.name for p in pictures}
    written = {name for mask, name in events if mask & (FolderWatch.MODIFY | FolderWatch.CLOSE_WRITE)}
    assert not written & finals, "a final name was open for writing: a reader could see it incomplete"
    moved = {name for mask, name in events if mask & FolderWatch.MOVED_TO}
    assert moved == finals  # each arrived by one rename of the finished file (no link was possible)


@no_links_here
def test_without_hard_links_processes_racing_for_one_name_still_make_distinct_files(emulator, tmp_path):
    denied = {"link": errno.EPERM, "linkat": errno.EPERM}
    out = tmp_path / "out"
    env = env_for(emulator, out)
    procs = [
        subprocess.Popen(
            [sys.executable, "scripts/gen.py", "one name for all"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: deny_syscalls(denied),
        )
        for _ in range(6)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    paths = [markers(stdout)[0] for stdout, _ in results]
    assert len(set(paths)) == 6 and sorted(out.iterdir()) == sorted(paths)
    for path in paths:
        picture(path)


def test_temporary_files_a_sigkill_left_are_removed_by_the_next_run(emulator, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from image_gen_local import files\n"
            "print(files._write_temp(b'half a picture', pathlib.Path(sys.argv[1])), flush=True)\n"
            "time.sleep(120)\n",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    left = Path(child.stdout.readline().strip())
    child.kill()  # SIGKILL: no finally runs, the temporary file stays
    child.wait(timeout=10)
    assert left.exists() and left.name.startswith(f"{TEMP_PREFIX}{child.pid}-")
    past = time.time() - 60  # older than the grace a file on a shared folder gets
    os.utime(left, (past, past))
    live = out / f"{TEMP_PREFIX}{os.getpid()}-busy{TEMP_SUFFIX}"  # this process lives: not swept
    live.write_bytes(b"")
    os.utime(live, (past, past))
    run = run_script("after the kill", env=env_for(emulator, out))
    assert run.returncode == 0, run.stderr
    assert not left.exists() and live.exists()


@pytest.fixture
def thread_freezer(tmp_path):
    """A cgroup-v1 freezer group: threads moved into it stop exactly where they are until thawed, while
    the rest of their process runs on (the kernel's freezer, so a thread can be held mid-write)."""
    root = Path("/sys/fs/cgroup/freezer")
    if os.geteuid() != 0 or not (root / "tasks").exists():
        pytest.skip("needs root and the cgroup v1 freezer")
    group = root / f"image-gen-test-{os.getpid()}-{tmp_path.name}"
    group.mkdir()
    state = group / "freezer.state"
    try:
        yield group
    finally:
        state.write_text("THAWED")
        for tid in (group / "tasks").read_text().split():
            with contextlib.suppress(OSError):
                (root / "tasks").write_text(tid)
        wait_until(lambda: not (group / "tasks").read_text().split(), timeout=10)
        group.rmdir()


def noise_answer(side: int) -> Reply:
    """An images-API answer holding a side x side picture of noise: ~3 bytes a pixel on disk, so its save
    (write and fsync) takes long enough to be caught in the middle."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG", compress_level=0)
    body = json.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(buffer.getvalue()).decode()}]})
    return Reply(200, body, content_type="application/json")


def test_sigterm_while_a_picture_is_written_leaves_nothing_partial(emulator, tmp_path, thread_freezer):
    """SIGTERM, then SIGTERM again (agent runners repeat it), while the worker saving a 50 MB picture is
    held mid-save by the kernel's freezer. The stopped run must wait for that picture before leaving,
    whatever the second signal says: before the fix the second one cut the wait short and the .part file
    stayed."""
    out = tmp_path / "out"
    out.mkdir()
    emulator.script(noise_answer(4096))
    watch = FolderWatch(out)
    proc = start_script("a picture", "--resolution", "4k", env=env_for(emulator, out))
    try:
        writing = watch.wait(
            lambda mask, name: bool(mask & FolderWatch.MODIFY) and name.startswith(TEMP_PREFIX)
        )
        os.kill(proc.pid, signal.SIGSTOP)  # every thread stops where it is, the picture half-saved
    finally:
        watch.events()
    assert writing, "the picture was never written"
    for tid in os.listdir(f"/proc/{proc.pid}/task"):
        if int(tid) != proc.pid:  # every thread but the main one, which must handle the signals
            (thread_freezer / "tasks").write_text(tid)
    (thread_freezer / "freezer.state").write_text("FROZEN")
    try:
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the run is stopping, waiting for the picture held mid-write
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
    finally:
        (thread_freezer / "freezer.state").write_text("THAWED")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "nothing partial was left behind" in stderr
    assert not [name for name in os.listdir(out) if name.startswith(TEMP_PREFIX)]
    for path in out.iterdir():
        picture(path)  # complete
    assert set(markers(stdout)) <= set(out.iterdir())


# Closed or abandoned streams, unbounded input (console, generate, batch, images)


def closing(*fds: int):
    """preexec_fn: the child starts with these descriptors closed, as after `>&-`, `2>&-` or `<&-`."""

    def close() -> None:
        for fd in fds:
            os.close(fd)

    return close


def posts(emu) -> int:
    return sum(1 for r in emu.requests if r.route in ("generations", "edits", "chat"))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def test_a_closed_stdout_keeps_the_picture_and_ends_with_exit_9_and_one_line(emulator, tmp_path):
    out = tmp_path / "out"
    run = run_script("a cat", env=env_for(emulator, out), preexec_fn=closing(1))
    assert run.returncode == 9, run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
    (line,) = error_lines(run.stderr)
    assert "stdout was closed" in line and "the pictures are saved" in line
    (saved,) = out.glob("*.png")
    picture(saved)


@pytest.mark.parametrize("count", ["1", "3"])
def test_a_closed_stderr_changes_nothing(emulator, tmp_path, count):
    out = tmp_path / "out"
    run = run_script("a cat", "-n", count, env=env_for(emulator, out), preexec_fn=closing(2))
    assert run.returncode == 0 and run.stderr == ""
    assert sorted(markers(run.stdout)) == sorted(out.glob("*.png")) and len(markers(run.stdout)) == int(count)


def test_a_stderr_nobody_reads_any_more_changes_nothing(make_emulator, tmp_path):
    """The reader of stderr exits first (EPIPE on every message): the pictures and the exit code stand."""
    emu = make_emulator(latency=0.3)
    out = tmp_path / "out"
    proc = start_script("a cat", "-n", "3", "-v", env=env_for(emu, out))
    assert proc.stderr is not None
    proc.stderr.close()
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert len(markers(stdout)) == 3 and sorted(markers(stdout)) == sorted(out.glob("*.png"))


def test_a_batch_with_stderr_closed_makes_every_picture(emulator, tmp_path):
    jobs = write_lines(tmp_path / "jobs.txt", ["one", "two", "three"])
    run = run_script("batch", str(jobs), env=env_for(emulator, tmp_path / "out"), preexec_fn=closing(2))
    assert run.returncode == 0 and run.stderr == "" and len(markers(run.stdout)) == 3


def test_a_batch_with_stdout_closed_stops_with_exit_9_and_resumes_later(emulator, tmp_path):
    jobs = write_lines(tmp_path / "jobs.txt", [f"picture {i}" for i in range(8)])
    out = tmp_path / "out"
    env = env_for(emulator, out)
    run = run_script("batch", str(jobs), env=env, preexec_fn=closing(1))
    assert run.returncode == 9, run.stderr
    assert "Traceback" not in run.stderr and "Exception" not in run.stderr
    (line,) = error_lines(run.stderr)
    assert "stdout was closed" in line
    made = sorted(out.glob("*.png"))
    rerun = run_script("batch", str(jobs), env=env)
    assert rerun.returncode == 0 and len(markers(rerun.stdout)) == 8
    assert set(made) <= set(markers(rerun.stdout))  # what the first run saved is recorded, not made again
    assert posts(emulator) == 8


@pytest.mark.parametrize(
    ("stdin", "words"),
    [
        ("a" * 10_000_000, "longer than 32000 characters"),
        ("\n" * 2000 + "a quiet lake" + "\n" * 2000, None),  # blank lines around a prompt are fine
    ],
)
def test_a_prompt_from_stdin_is_read_only_up_to_the_prompt_limit(emulator, tmp_path, stdin, words):
    run = run_script("-", env=env_for(emulator, tmp_path / "out"), input=stdin)
    if words is None:
        assert run.returncode == 0 and len(markers(run.stdout)) == 1, run.stderr
        assert [r.body["prompt"] for r in emulator.requests if r.route == "generations"] == ["a quiet lake"]
        return
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1 and words in run.stderr
    assert posts(emulator) == 0


@pytest.mark.parametrize("where", ["stdin", "argv"])
def test_a_prompt_that_is_not_utf8_is_refused_at_once(emulator, tmp_path, where):
    """Before, the undecodable bytes reached the HTTP layer and were retried as a broken connection for the
    whole --timeout (ten minutes), then exit 5."""
    env = {**os.environ, **env_for(emulator, tmp_path / "out")}
    env.pop("PYTHONPATH", None)
    argv = [os.fsencode(sys.executable), b"scripts/gen.py"]
    argv.append(b"-" if where == "stdin" else b"caf\xe9 au lait")
    run = subprocess.run(argv, cwd=ROOT, env=env, input=b"caf\xe9 au lait\n", capture_output=True, timeout=60)
    stderr = run.stderr.decode()
    assert run.returncode == 2 and run.stdout == b"", stderr
    assert len(stderr.strip().splitlines()) == 1 and "not UTF-8" in stderr
    assert posts(emulator) == 0


def test_a_closed_stdin_is_a_usage_error(emulator, tmp_path):
    for args in (["-"], ["batch", "-"]):
        run = run_script(*args, env=env_for(emulator, tmp_path / "out"), preexec_fn=closing(0))
        assert run.returncode == 2 and "stdin is closed" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1


def test_jobs_on_stdin_that_are_not_utf8_are_a_usage_error(emulator, tmp_path):
    env = {**os.environ, **env_for(emulator, tmp_path / "out")}
    env.pop("PYTHONPATH", None)
    argv = [sys.executable, "scripts/gen.py", "batch", "-"]
    run = subprocess.run(argv, cwd=ROOT, env=env, input=b"caf\xe9\n", capture_output=True, timeout=60)
    assert run.returncode == 2 and b"not UTF-8" in run.stderr and posts(emulator) == 0


def test_an_input_picture_larger_than_the_limit_is_refused_before_it_is_read(emulator, tmp_path):
    huge = tmp_path / "huge.png"
    with huge.open(
        "wb"
    ) as handle:  # sparse: 300 MiB that take no disk space and would take 300 MiB of memory
        handle.truncate(300 * 1024 * 1024)
    run = run_script("x", "--image", str(huge), env=env_for(emulator, tmp_path / "out"))
    assert run.returncode == 7 and "larger than 256 MiB" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and posts(emulator) == 0


def test_a_job_line_longer_than_any_job_is_refused_before_any_request(emulator, tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a fine prompt\n" + "x" * 3_000_000, encoding="utf-8")  # no newline: one endless line
    run = run_script("batch", str(jobs), env=env_for(emulator, tmp_path / "out"))
    assert run.returncode == 2 and "line 2" in run.stderr and "longer than" in run.stderr
    assert posts(emulator) == 0


def test_endless_jobs_on_stdin_are_refused_before_any_request(emulator, tmp_path):
    """Before, `yes | image-gen batch -` spooled stdin to /tmp for ever (often RAM), never sending a thing."""
    producer = subprocess.Popen(["yes", "a boat on the sea"], stdout=subprocess.PIPE)
    try:
        run = run_script("batch", "-", env=env_for(emulator, tmp_path / "out"), stdin=producer.stdout)
    finally:
        producer.kill()
        producer.wait()
        assert producer.stdout is not None
        producer.stdout.close()
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "more than 64,000,000 characters" in run.stderr
    assert posts(emulator) == 0


def test_jobs_on_stdin_with_no_room_for_them_end_with_exit_9_and_one_line(emulator, tmp_path, tiny_disk):
    env = {**env_for(emulator, tmp_path / "out"), "TMPDIR": str(tiny_disk)}
    run = run_script("batch", "-", env=env, input="a boat on the sea\n" * 100_000)
    assert run.returncode == 9 and run.stdout == "", run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "temporary file" in run.stderr, run.stderr
    assert posts(emulator) == 0 and list(tiny_disk.iterdir()) == []


@pytest.mark.parametrize("points_to", ["nowhere.png", "victim.txt"])
def test_an_output_name_held_by_a_symlink_is_refused_before_any_request(emulator, tmp_path, points_to):
    """Before, a dangling symlink passed the check (`exists()` follows links), the picture was paid for,
    and only the save found the name taken. Either way the link and its target are left alone."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    link = tmp_path / "cover.png"
    link.symlink_to(tmp_path / points_to)
    run = run_script("a lighthouse", "-o", str(link), env=env_for(emulator, tmp_path / "out"))
    assert run.returncode == 2 and run.stdout == "" and "already exists" in run.stderr, run.stderr
    assert posts(emulator) == 0
    assert os.readlink(link) == str(tmp_path / points_to) and victim.read_text(encoding="utf-8") == "keep me"
    assert not (tmp_path / "nowhere.png").exists()


@pytest.mark.parametrize("args", [["emulator", "--list-faults"], ["history"], ["doctor"]])
def test_a_closed_stdout_of_a_command_that_saves_nothing_does_not_speak_of_saved_pictures(
    emulator, tmp_path, args
):
    env = {**env_for(emulator, tmp_path / "out"), "IMAGE_GEN_DATA_DIR": str(tmp_path / "data")}
    run_script("a lighthouse", env=env)  # a picture in the history, for `history`
    run = run_script(*args, env=env, preexec_fn=closing(1))
    assert run.returncode == 9 and "stdout was closed" in run.stderr, run.stderr
    assert "pictures are saved" not in run.stderr and "Traceback" not in run.stderr
