"""The batch manifest: one JSON line per saved picture and per finished job, appended as they happen.

Appending line by line means a batch killed at any moment leaves every finished picture recorded. Each line
goes out in one write and is synced before the next; a write the disk cut short is taken back, so the file
only ever holds whole lines, and a last line a kill or a power cut left unfinished is cut off when the next
run opens the file, so its lines start clean. A rerun streams the file and counts, per job key, the pictures
that still exist on disk, so only what is missing is asked for again.

A run holds an exclusive lock on the manifest (flock, released by the kernel when the process ends, however
it ends), so a second batch on the same job file is refused at once instead of paying for every picture
again. A file that is not a manifest (the job file itself, a picture, notes) is refused, never appended to.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ImageGenError, OutputError, UsageError

# Every record starts with its time (`append` puts it first), so a manifest is known by its first bytes.
SIGNATURE = b'{"time": '
_HEAD = 64 * 1024  # how much of the start is read to recognise a manifest
_FIX = "choose another --manifest (a new file, or one a batch wrote)"


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._broken: ImageGenError | None = None  # the first write that failed: later ones are not tried

    def open(self) -> str | None:
        """Claim the manifest for this run before any request: refuse what is not a manifest or cannot be
        written (UsageError, OutputError), lock it against a second batch (OutputError naming the other
        process), and cut off a last line left unfinished. Returns a line to show the user, or None."""
        with self._lock:
            if self._fd is not None:
                return None
            try:
                return self._claim()
            except OSError as exc:
                raise _write_error(self.path, exc) from None

    def _claim(self) -> str | None:
        if self.path.is_dir():
            raise OutputError(f"the manifest {self.path} is a folder", _FIX)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o666)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutputError(f"the manifest {self.path} is not a regular file", _FIX)
            note = _lock(fd, self.path)
            if not _is_manifest(os.pread(fd, _HEAD, 0)):
                raise UsageError(f"{self.path} is not a batch manifest (it does not start with one)", _FIX)
            dropped = _cut_unfinished_line(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if dropped:
            note = (
                f"the manifest's last line was left unfinished by a run that was stopped mid-write; "
                f"its {dropped} byte(s) were dropped (that picture, if any, is made again)"
            )
        return note

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record, streamed; a damaged line (a kill mid-write) is skipped."""
        try:
            handle = self.path.open(encoding="utf-8", errors="replace")  # a kill can cut a character too
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(
                f"cannot read the manifest {self.path} ({exc.strerror or exc})", "choose another --manifest"
            ) from None
        with handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise OutputError(f"the manifest {self.path} is not a regular file", _FIX)
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record

    def done(self) -> dict[str, list[str]]:
        """Per job key, the saved pictures that are still on disk."""
        saved: dict[str, list[str]] = {}
        for record in self.records():
            path = record.get("path")
            if record.get("type") == "picture" and isinstance(path, str) and Path(path).is_file():
                saved.setdefault(str(record.get("job")), []).append(path)
        return saved

    def append(self, record: dict[str, Any]) -> None:
        """One whole line, synced; raises OutputError (and keeps raising it: the run must stop)."""
        line = (json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False) + "\n").encode()
        if self._fd is None:
            self.open()
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._fd is None:  # closed meanwhile by another thread
                raise OutputError(f"the manifest {self.path} is closed", "this is a bug: please report it")
            try:
                _write_line(self._fd, line)
            except OSError as exc:
                self._broken = _write_error(self.path, exc)
                raise self._broken from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # releases the lock
                self._fd = None
            self._broken = None


def _is_manifest(head: bytes) -> bool:
    """Empty (a new manifest), or starting like a record: `{"time": ...` (even if that line was cut)."""
    if not head.strip():
        return True
    if head.startswith(SIGNATURE):
        return True
    first = head.split(b"\n", 1)[0]
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "time" in record


def _lock(fd: int, path: Path) -> str | None:
    """An exclusive lock for this run, never waited for; a note when this filesystem cannot lock."""
    if sys.platform == "win32":  # no flock there: a second batch is not detected
        return None
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        who = f" (pid {pid})" if pid else ""
        raise OutputError(
            f"another batch is running on this manifest{who}: {path}",
            "wait for it to finish, or give this batch its own --manifest",
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
            raise
        return f"the manifest {path} cannot be locked here: do not run two batches on it at once"
    return None


def _holder(fd: int) -> int | None:
    """The process holding a flock on this file, from /proc/locks (Linux); None where it cannot be told."""
    info = os.fstat(fd)
    inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    found: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/locks", encoding="ascii") as locks:
        for line in locks:
            fields = line.split()
            if "->" not in fields and fields[1] == "FLOCK":
                found.setdefault(fields[5], int(fields[4]))
    # Layered filesystems (overlay) may show another device number for the same file: then the inode decides.
    same = [pid for key, pid in found.items() if key.rsplit(":", 1)[-1] == str(info.st_ino)]
    return found.get(inode) or (same[0] if len(same) == 1 else None)


def _cut_unfinished_line(fd: int) -> int:
    """Truncate a last line with no newline (a kill or power cut mid-write); return the bytes dropped."""
    size = end = os.fstat(fd).st_size
    while end > 0:
        start = max(0, end - _HEAD)
        chunk = os.pread(fd, end - start, start)
        if start + len(chunk) == size and chunk.endswith(b"\n"):
            return 0  # whole lines only: the usual case, one read
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end == size:
        return 0
    os.ftruncate(fd, end)
    os.fsync(fd)
    return size - end


def _write_line(fd: int, line: bytes) -> None:
    """Append one line in one write; a short write (the disk filled up) is taken back before raising."""
    start = os.fstat(fd).st_size
    written = 0
    try:
        while written < len(line):
            count = os.write(fd, line[written:])
            if count == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += count
        os.fsync(fd)
    except OSError:
        if written:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
        raise


def _write_error(path: Path, exc: OSError) -> ImageGenError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(
            f"cannot write the manifest {path}: the disk is full ({exc.strerror or exc})",
            "free some space and run the same command again (pictures saved but not recorded are made again)",
        )
    return OutputError(
        f"cannot write the manifest {path} ({exc.strerror or exc})",
        "check the folder, or choose another --manifest",
    )
