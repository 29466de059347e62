"""Plain helpers for the tests: run the CLI or the skill script, read marker lines, make pictures.

Fixtures live in conftest.py; anything a test imports by name lives here (pytest discourages importing
from conftest).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from image_gen_local.cli import main

ROOT = Path(__file__).resolve().parent.parent
MARKER_PREFIX, MARKER_SUFFIX = "[IMAGE_PATH]", "[/IMAGE_PATH]"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def paths(self) -> list[Path]:
        return markers(self.stdout)

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def markers(stdout: str) -> list[Path]:
    """Every stdout line must be a marker line; return their paths."""
    paths = []
    for line in stdout.splitlines():
        assert line.startswith(MARKER_PREFIX) and line.endswith(MARKER_SUFFIX), f"stray stdout line: {line!r}"
        paths.append(Path(line[len(MARKER_PREFIX) : -len(MARKER_SUFFIX)]))
    return paths


def cli(*args: str, stdin: str = "") -> Run:
    """Run the CLI in-process (fast) with real stdout/stderr streams."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Run(int(code), out.getvalue(), err.getvalue())


def _script_env(env: dict[str, str] | None) -> dict[str, str]:
    """The test's environment without PYTHONPATH, so the script finds the package the way the skill does."""
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(env or {})
    return full


def run_script(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, **kwargs
) -> subprocess.CompletedProcess:
    """Run scripts/gen.py exactly as the skill does: a new python3 process from the skill folder."""
    return subprocess.run(
        [sys.executable, "scripts/gen.py", *args],
        cwd=ROOT,
        env=_script_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def start_script(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """scripts/gen.py in the background, for tests that signal it."""
    return subprocess.Popen(
        [sys.executable, "scripts/gen.py", *args],
        cwd=ROOT,
        env=_script_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def serving(argv: list[str]) -> tuple[subprocess.Popen, int]:
    """An emulator in its own process (`argv` after the interpreter, the package importable from src/),
    and the port its first stderr line announces; stop it with terminate() or a signal."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("image-gen-local emulator on http://127.0.0.1:"), line
    return process, int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def picture(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def png_bytes(size: tuple[int, int], colour: str = "teal", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def write_picture(path: Path, size: tuple[int, int], fmt: str = "PNG", **save) -> Path:
    Image.new("RGB", size, "orange").save(path, fmt, **save)
    return path


Handler = Callable[[socket.socket, str, bytes], None]


def http_response(status: int, body: bytes | str, headers: dict[str, str] | None = None) -> bytes:
    """Raw HTTP/1.1 answer bytes with a Content-Length; `headers` may add or override any header."""
    data = body.encode() if isinstance(body, str) else body
    head = {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items() if v)
    return f"HTTP/1.1 {status} X\r\n{lines}Connection: close\r\n\r\n".encode() + data


def _read_request(conn: socket.socket) -> tuple[str, bytes] | None:
    """One request's path and body, read with bounded loops (head up to 1 MiB, body up to Content-Length)."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 1 << 20:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        head += chunk
    header, _, body = head.partition(b"\r\n\r\n")
    lengths = [h.split(b":")[1] for h in header.split(b"\r\n") if h.lower().startswith(b"content-length")]
    length = int(lengths[0]) if lengths else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return header.split(b" ")[1].decode(), body


@dataclass
class RawServer:
    """A loopback server that hands every request to `handler(conn, path, body)` and counts the paths.

    Hostile answers are written byte by byte by the handler; the connection is closed after it returns.
    """

    handler: Handler
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = _read_request(conn)
                if request is not None:
                    self.requests.append(request[0])
                    self.handler(conn, *request)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


# The kernel as a fault injector: real processes, real filesystems, no mocks (Linux only).

# Syscall numbers by machine: link, linkat, renameat2 (aarch64 has no plain link).
_SYSCALLS = {
    "x86_64": (0xC000003E, {"link": 86, "linkat": 265, "renameat2": 316}),
    "aarch64": (0xC00000B7, {"linkat": 37, "renameat2": 276}),
}


def can_deny_syscalls() -> bool:
    import platform

    return sys.platform.startswith("linux") and platform.machine() in _SYSCALLS


def deny_syscalls(denied: dict[str, int]) -> None:
    """Make the named syscalls fail with the given errno in this process and every child it starts
    (a seccomp filter). Meant for `preexec_fn`: the child then runs on a filesystem that, for instance,
    has no hard links (`{"link": errno.EPERM, "linkat": errno.EPERM}`), as FAT or some network shares."""
    import ctypes
    import platform

    class Instruction(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint),
        ]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction))]

    load, jump_if_equal, give = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    allow, fail = 0x7FFF0000, 0x00050000  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    arch, numbers = _SYSCALLS[platform.machine()]
    code = [
        Instruction(load, 0, 0, 4),
        Instruction(jump_if_equal, 1, 0, arch),
        Instruction(give, 0, 0, allow),
    ]
    code.append(Instruction(load, 0, 0, 0))  # the syscall number
    for name, error in denied.items():
        if name in numbers:
            code += [Instruction(jump_if_equal, 0, 1, numbers[name]), Instruction(give, 0, 0, fail | error)]
    code.append(Instruction(give, 0, 0, allow))
    program = Program(len(code), (Instruction * len(code))(*code))
    libc = ctypes.CDLL(None, use_errno=True)
    no_new_privileges, set_seccomp, filter_mode = 38, 22, 2
    if libc.prctl(no_new_privileges, 1, 0, 0, 0) or libc.prctl(
        set_seccomp, filter_mode, ctypes.byref(program)
    ):
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


class FolderWatch:
    """inotify on one folder: which names were written to (opened for writing, modified), in order."""

    MODIFY, CLOSE_WRITE, MOVED_TO, CREATE = 0x2, 0x8, 0x80, 0x100

    def __init__(self, folder: Path) -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        mask = self.MODIFY | self.CLOSE_WRITE | self.MOVED_TO | self.CREATE
        if self.fd < 0 or libc.inotify_add_watch(self.fd, os.fsencode(folder), mask) < 0:
            raise OSError(ctypes.get_errno(), "inotify")

    def _read(self) -> list[tuple[int, str]]:
        import struct

        try:
            data = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return []
        found, offset = [], 0
        while offset < len(data):
            _wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            found.append((mask, data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()))
            offset += 16 + length
        return found

    def wait(self, wanted: Callable[[int, str], bool], timeout: float = 60) -> bool:
        """Block until an event satisfies `wanted(mask, name)`; False if `timeout` passes first."""
        import select

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if select.select([self.fd], [], [], left)[0] and any(wanted(*event) for event in self._read()):
                return True
        return False

    def events(self) -> list[tuple[int, str]]:
        """(mask, name) for everything seen since the last call; closes the watch."""
        found: list[tuple[int, str]] = []
        try:
            while batch := self._read():
                found += batch
            return found
        finally:
            os.close(self.fd)


def start_server(argv: list[str], env: dict[str, str], ready: str) -> tuple[subprocess.Popen, list[str]]:
    """A server process whose stderr is collected line by line; returns once a line holds `ready` (or it
    exited). The caller terminates it."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert process.stderr is not None
    threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True).start()
    try:
        wait_until(lambda: any(ready in line for line in lines) or process.poll() is not None)
    except BaseException:
        process.kill()
        raise
    return process, lines
