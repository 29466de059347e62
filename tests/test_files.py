import os
import threading

import pytest

from image_gen_local.errors import OutputError, UsageError
from image_gen_local.files import TEMP_PREFIX, check_new_file, prepare_dir, save_exact, save_new


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
