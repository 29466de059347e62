"""Writing pictures: complete or not at all, and never over an existing file.

Each picture is written to a hidden temporary file in the target folder (`.image-gen-<pid>-<random>.part`),
synced, then hard-linked to its final name. A link fails if the name exists, so two processes racing for the
same name both succeed with different names (`-2`, `-3`, ...), and a reader never sees a half-written
picture. Where the filesystem has no hard links (FAT, exFAT, some network shares), the complete file is
renamed to its name with the kernel's "only if absent" rename (Linux renameat2 RENAME_NOREPLACE); where that
is missing too, it is renamed after checking the name is free: the name still only ever appears complete,
and only another program creating that very name in the same instant could be overwritten.

Temporary files carry their process id, so a run removes those a killed run left behind (the process is
gone) and never those of a run still going.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from .errors import OutputError, UsageError
from .naming import numbered

TEMP_PREFIX = ".image-gen-"
TEMP_SUFFIX = ".part"
MAX_NUMBER = 10_000
STALE_SECONDS = 3600.0  # a temporary file lives for milliseconds: one this old is abandoned, whoever made it
ORPHAN_SECONDS = (
    10.0  # one whose process is gone is removed after this (another machine may share the folder)
)
# link(2) errors meaning "this filesystem has no hard links", not "this name is taken"
NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def prepare_dir(directory: Path) -> Path:
    """Create the output folder if needed and prove we can write there; return its absolute path."""
    directory = directory.expanduser()
    shown = str(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"output folder {shown} is a file, not a folder", "choose another --output-dir")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix(), suffix=TEMP_SUFFIX, dir=directory)
        os.close(fd)
        os.unlink(probe)
    except NotADirectoryError:
        raise OutputError(f"output folder {shown} lies under a file", "choose another --output-dir") from None
    except OSError as exc:
        raise OutputError(
            f"output folder {shown} is not writable ({exc.strerror or exc})",
            "choose another --output-dir or fix its permissions",
        ) from None
    sweep_temps(directory)
    return directory.resolve()


def sweep_temps(directory: Path) -> int:
    """Remove the temporary files killed runs left here: only ours (by name), only those whose process is
    gone, or that are older than an hour. Returns how many were removed."""
    now, removed = time.time(), 0
    for temp in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            age = now - temp.lstat().st_mtime
            owner = temp_owner(temp.name)
            orphan = owner is not None and age > ORPHAN_SECONDS and not _alive(owner)
            if age > STALE_SECONDS or orphan:
                temp.unlink()
                removed += 1
    return removed


def remove_own_temps(directory: Path) -> None:
    """This process is stopping (Ctrl-C, SIGTERM): remove its temporary files, whatever state they are in."""
    for temp in directory.glob(f"{_temp_prefix()}*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            temp.unlink()


def temp_owner(name: str) -> int | None:
    """The process id in one of our temporary file names (None for older names without one)."""
    pid, dash, _ = name.removeprefix(TEMP_PREFIX).partition("-")
    return int(pid) if dash and pid.isdigit() else None


def _temp_prefix() -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would stop the process there: assume it lives
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def check_new_file(path: Path) -> Path:
    """For -o: the name must be free (not even a dangling symlink: the save would find it taken only after
    the picture was paid for) and its folder writable."""
    path = path.expanduser()
    if os.path.lexists(path):
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
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(), suffix=TEMP_SUFFIX, dir=directory)
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
    """Give the complete temp file the target name unless that name exists; True if placed. The name
    never appears empty or partial: it is made by one link or one rename of the finished file."""
    try:
        os.link(temp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in NO_LINKS:
            raise
    moved = rename_new(temp, target)
    if moved is not None:
        return moved
    if os.path.lexists(target):  # neither links nor an exclusive rename: check, then rename
        return False
    os.rename(temp, target)
    return True


def rename_new(source: Path, target: Path) -> bool | None:
    """Rename that never replaces (Linux renameat2 with RENAME_NOREPLACE): True if moved, False if the
    name is taken, None where the system or the filesystem cannot do it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only on filesystems without hard links

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)  # glibc 2.28+, musl 1.2.4+
    if renameat2 is None:
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, no_replace = -100, 1  # AT_FDCWD, RENAME_NOREPLACE
    if renameat2(at_cwd, os.fsencode(source), at_cwd, os.fsencode(target), no_replace) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        return False
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return None
    raise OSError(code, os.strerror(code), str(target))


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
