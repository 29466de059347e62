import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from image_gen_local.errors import OutputError, UsageError
from image_gen_local.files import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    check_new_file,
    prepare_dir,
    remove_own_temps,
    rename_new,
    save_exact,
    save_new,
    sweep_temps,
    temp_owner,
)


def test_save_new_numbers_instead_of_overwriting(tmp_path):
    first = save_new(b"one", tmp_path, "stem", "png")
    second = save_new(b"two", tmp_path, "stem", "png")
    assert first.name == "stem.png" and second.name == "stem-2.png"
    assert first.read_bytes() == b"one"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_concurrent_saves_get_distinct_names(tmp_path):
    results = []
    barrier = threading.Barrier(16)

    def worker(i):
        barrier.wait()
        results.append(save_new(f"{i}".encode(), tmp_path, "race", "png"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 16
    assert sorted(p.read_bytes() for p in results) == sorted(f"{i}".encode() for i in range(16))


def test_save_exact_never_overwrites(tmp_path):
    target = tmp_path / "a.png"
    save_exact(b"x", target)
    with pytest.raises(UsageError):
        save_exact(b"y", target)
    assert target.read_bytes() == b"x"


def test_prepare_dir_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="is a file"):
        prepare_dir(blocker)
    with pytest.raises(OutputError):
        prepare_dir(blocker / "below")
    assert prepare_dir(tmp_path / "new" / "deep").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_prepare_dir_unwritable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            prepare_dir(locked)
    finally:
        locked.chmod(0o700)


def test_check_new_file(tmp_path):
    existing = tmp_path / "x.png"
    existing.write_bytes(b"")
    with pytest.raises(UsageError, match="already exists"):
        check_new_file(existing)
    assert check_new_file(tmp_path / "sub" / "y.png").parent.is_dir()


# Temporary files carry their process id; killed runs' files are swept, live runs' never (issue 9 §7)


def make_temp(folder, pid, age: float, rest: str = "abc123") -> Path:
    temp = folder / f"{TEMP_PREFIX}{pid}-{rest}{TEMP_SUFFIX}"
    temp.write_bytes(b"half a picture")
    past = time.time() - age
    os.utime(temp, (past, past))
    return temp


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_temporary_file_names_say_which_process_made_them():
    assert temp_owner(f"{TEMP_PREFIX}{os.getpid()}-k3j4h5{TEMP_SUFFIX}") == os.getpid()
    assert temp_owner(f"{TEMP_PREFIX}k3j4h5{TEMP_SUFFIX}") is None  # an older name, without a pid


def test_sweeping_removes_only_what_no_live_run_will_finish(tmp_path):
    gone = dead_pid()
    orphan = make_temp(tmp_path, gone, age=60)
    fresh_orphan = make_temp(tmp_path, gone, age=0, rest="young")  # another machine's, perhaps: not yet
    mine = make_temp(tmp_path, os.getpid(), age=600)  # a run still going
    parent = make_temp(tmp_path, os.getppid(), age=600, rest="parent")
    ancient = make_temp(tmp_path, os.getpid(), age=2 * 3600, rest="ancient")
    old_style = tmp_path / f"{TEMP_PREFIX}k3j4h5{TEMP_SUFFIX}"
    old_style.write_bytes(b"")
    os.utime(old_style, (time.time() - 2 * 3600,) * 2)
    others = [tmp_path / ".image-gen-notes.txt", tmp_path / ".other.part", tmp_path / "picture.png"]
    for other in others:
        other.write_bytes(b"keep")
        os.utime(other, (time.time() - 2 * 3600,) * 2)
    assert sweep_temps(tmp_path) == 3
    assert not orphan.exists() and not ancient.exists() and not old_style.exists()
    assert fresh_orphan.exists() and mine.exists() and parent.exists()
    assert all(other.exists() for other in others)


def test_prepare_dir_sweeps_what_a_killed_run_left(tmp_path):
    orphan = make_temp(tmp_path, dead_pid(), age=60)
    prepare_dir(tmp_path)
    assert not orphan.exists()


def test_a_stopping_run_removes_its_own_temporary_files_only(tmp_path):
    mine = make_temp(tmp_path, os.getpid(), age=0)
    theirs = make_temp(tmp_path, os.getppid(), age=0)
    remove_own_temps(tmp_path)
    assert not mine.exists() and theirs.exists()


# Without hard links: the rename that never replaces


def test_rename_new_moves_to_a_free_name_and_never_replaces(tmp_path):
    source, target = tmp_path / "a.part", tmp_path / "a.png"
    source.write_bytes(b"new")
    target.write_bytes(b"old")
    assert rename_new(source, target) in (False, None)
    assert target.read_bytes() == b"old"
    if rename_new(source, target) is None:
        pytest.skip("this system has no exclusive rename")
    assert source.read_bytes() == b"new"
    target.unlink()
    assert rename_new(source, target) is True
    assert target.read_bytes() == b"new" and not source.exists()
