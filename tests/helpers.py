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
