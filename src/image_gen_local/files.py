"""Writing pictures: complete or not at all, and never over an existing file.

Each picture is written to a hidden temporary file in the target folder, then hard-linked to its final
name. A link fails if the name exists, so two processes racing for the same name both succeed with
different names (`-2`, `-3`, ...), and a reader never sees a half-written picture.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from pathlib import Path

from .errors import OutputError, UsageError
from .naming import numbered

TEMP_PREFIX = ".image-gen-"
TEMP_SUFFIX = ".part"
MAX_NUMBER = 10_000


def prepare_dir(directory: Path) -> Path:
    """Create the output folder if needed and prove we can write there; return its absolute path."""
    directory = directory.expanduser()
    shown = str(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"output folder {shown} is a file, not a folder", "choose another --output-dir")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
        os.close(fd)
        os.unlink(probe)
    except NotADirectoryError:
        raise OutputError(f"output folder {shown} lies under a file", "choose another --output-dir") from None
    except OSError as exc:
        raise OutputError(
            f"output folder {shown} is not writable ({exc.strerror or exc})",
            "choose another --output-dir or fix its permissions",
        ) from None
    return directory.resolve()


def sweep_temps(directory: Path, older_than: float = 3600.0) -> None:
    """Remove temporary files a killed run left behind (they live for milliseconds, so an hour is stale)."""
    cutoff = time.time() - older_than
    for temp in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if temp.stat().st_mtime < cutoff:
                temp.unlink()


def check_new_file(path: Path) -> Path:
    """For -o: the file must not exist and its folder must be writable."""
    path = path.expanduser()
    if path.exists():
        raise UsageError(f"--output {path} already exists", "choose another name or delete it first")
    prepare_dir(path.parent)
    return path.parent.resolve() / path.name


def new_file_mode() -> int:
    """The mode a file created by the user gets (0o666 less the umask): mkstemp's 0o600 would hide our
    pictures from a messaging gateway or web server running as another user."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644  # no /proc (macOS, Windows): the usual umask 022


def _write_temp(data: bytes, directory: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        _remove(Path(name))
        if isinstance(exc, OSError):
            raise _output_error(directory, exc) from None
        raise
    return Path(name)


def _output_error(directory: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(
            f"the disk holding {directory} is full", "free some space or choose another --output-dir"
        )
    return OutputError(
        f"cannot write in {directory} ({exc.strerror or exc})", "check the folder's permissions"
    )


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _place(temp: Path, target: Path) -> bool:
    """Give the temp file the target name unless that name exists; True if placed."""
    try:
        os.link(temp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    # Filesystems without hard links (FAT, some network shares): claim the name, then move over the claim.
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    try:
        os.replace(temp, target)
    except OSError:
        _remove(target)  # our empty claim, not someone's file
        raise
    return True


def save_new(data: bytes, directory: Path, stem: str, ext: str) -> Path:
    """Save under `stem.ext`, or `stem-2.ext`, `stem-3.ext`, ... whichever is free first."""
    temp = _write_temp(data, directory)
    try:
        for n in range(1, MAX_NUMBER):
            target = directory / f"{numbered(stem, n)}.{ext}"
            if _place(temp, target):
                return target
        raise OutputError(f"{MAX_NUMBER} files named {stem} already exist in {directory}", "clean the folder")
    except OSError as exc:
        raise _output_error(directory, exc) from None
    finally:
        _remove(temp)


def save_exact(data: bytes, path: Path) -> Path:
    """Save at exactly `path`, failing (never overwriting) if it appeared meanwhile."""
    temp = _write_temp(data, path.parent)
    try:
        if not _place(temp, path):
            raise UsageError(f"--output {path} already exists", "choose another name or delete it first")
        return path
    except OSError as exc:
        raise _output_error(path.parent, exc) from None
    finally:
        _remove(temp)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in pieces (an input picture can be large); raises OSError."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()
