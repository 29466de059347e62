"""Soak of hostile answers: every run ends in time, in bounded memory, no exit 1, nothing partial, no key.

`python bench/hostile.py [--quick] [--rounds N] [--timeout S]`. A loopback server misbehaves one way per
base-URL path (`/<mode>/v1`); each run is the real command in its own process (`python -m image_gen_local`)
with a 48-character key, measured with `os.wait4` (wall time, peak RSS). The baseline is the well-behaved
answer (`good`), measured in the same run; figures are reported against it and against the targets:
every run within --timeout + 2 s, peak RSS under 300 MB, no exit 1, no partial or overwritten file, no
6-character piece of the key in any output.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

import readme

KEY = "sk-soak-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
SLACK, RSS_TARGET_MIB = 2.0, 300


def _http(status: int, body: bytes, **headers: str) -> bytes:
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    lines = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in head.items())
    return f"HTTP/1.1 {status} X\r\n{lines}Connection: close\r\n\r\n".encode() + body


def _picture(size: tuple[int, int], orientation: int = 1) -> bytes:
    image, out = Image.new("RGB", size, "teal"), io.BytesIO()
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(out, "JPEG", exif=exif.tobytes())
    return json.dumps({"data": [{"b64_json": base64.b64encode(out.getvalue()).decode()}]}).encode()


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(1024)) + packer.flush()  # 1 GiB as ~1 MB


def answers() -> dict[str, bytes | Callable[[socket.socket], None]]:
    bomb = _bomb()
    echo = f"{'x' * 230} key {KEY} = {base64.b64encode(KEY.encode()).decode()} {json.dumps(KEY)}".encode()

    def trickle(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{":
            conn.sendall(bytes([byte]))
            time.sleep(0.3)

    return {
        "good": _http(200, _picture((1024, 1024))),
        "trickle": trickle,
        "silent": lambda conn: time.sleep(60),
        "redirect-loop": _http(302, b"", Location="/redirect-loop/v1/images/generations"),
        "gzip-bomb-200": _http(200, bomb, Content_Encoding="gzip"),
        "gzip-bomb-500": _http(500, bomb, Content_Encoding="gzip"),
        "lying-encoding": _http(200, b'{"data": []}', Content_Encoding="gzip"),
        "nested-json": _http(200, b"[" * 100_000 + b"]" * 100_000),
        "markdown-bait": _http(
            200, json.dumps({"choices": [{"message": {"content": "![" * 200_000}}]}).encode()
        ),
        "key-echo": _http(400, echo),
        "retry-after-0": _http(429, b"busy", Retry_After="0"),
        "error-429-in-200": _http(200, b'{"error": {"code": 429, "message": "slow down"}}'),
        "wrong-shape": _http(200, b'{"choices": 5, "data": 5}'),
        "degenerate": _http(200, _picture((20000, 1))),
        "rotated": _http(200, _picture((768, 1376), orientation=6)),
    }


class Server:
    def __init__(self, table: dict[str, bytes | Callable[[socket.socket], None]]) -> None:
        self.table = table
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/{mode}/v1"

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
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 1 << 20:  # the whole request, then answer
                    head += conn.recv(65536) or b"\r\n\r\n"
                lines = head.split(b"\r\n\r\n")[0].lower().split(b"\r\n")
                length = next((int(h.split(b":")[1]) for h in lines if h.startswith(b"content-length")), 0)
                body = head.partition(b"\r\n\r\n")[2]
                while len(body) < length:
                    body += conn.recv(65536) or b"x" * length
                mode = head.split(b" ")[1].decode().split("/")[1]
                if head.split(b" ")[1].endswith(b"/models"):
                    conn.sendall(_http(404, b""))
                    return
                answer = self.table[mode]
                answer(conn) if callable(answer) else conn.sendall(answer)
            except (OSError, IndexError, KeyError):
                pass


# Children are spawned from this small launcher: Linux counts the spawning process's own high-water mark in
# a child's ru_maxrss, and this process holds the answers.
LAUNCHER = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as sink:
    child = subprocess.Popen(sys.argv[2:], stdout=sink, stderr=sink)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


@dataclass
class Run:
    code: int
    seconds: float
    rss_mib: float
    leak: bool  # a 6-character piece of the key in stdout or stderr
    partial: bool  # a hidden or .part file left, or a picture file without exit 0 (or none with it)
    overwritten: bool  # the file already in the folder changed


def one_run(url: str, folder: Path, timeout: float) -> Run:
    folder.mkdir(parents=True)
    sentinel = folder / "already-here.png"
    sentinel.write_bytes(b"keep me")
    args = [sys.executable, "-m", "image_gen_local", "a lighthouse at dusk", "--base-url", url, "--json"]
    args += ["--api-key", KEY, "--timeout", str(timeout), "--output-dir", str(folder)]
    output = folder.parent / f"{folder.name}.out"
    started = time.monotonic()
    launched = subprocess.run([sys.executable, "-c", LAUNCHER, str(output), *args], capture_output=True)
    seconds = time.monotonic() - started
    code, rss = (int(v) for v in launched.stdout.split())
    text = output.read_text("utf-8", "replace")
    files = [p for p in folder.iterdir() if p != sentinel]
    return Run(
        code,
        seconds,
        rss / 1024,
        any(KEY[i : i + 6] in text for i in range(len(KEY) - 5)),
        any(p.name.startswith(".") or p.suffix == ".part" for p in files) or len(files) != (code == 0),
        sentinel.read_bytes() != b"keep me",
    )


def measure(server: Server, modes: list[str], rounds: int, timeout: float) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as temp:
        os.environ["IMAGE_GEN_CACHE_DIR"] = str(Path(temp) / "cache")
        os.environ["IMAGE_GEN_DATA_DIR"] = str(Path(temp) / "data")  # its own history, not the user's
        for round_ in range(rounds):
            for mode in modes:
                results[mode].append(one_run(server.url(mode), Path(temp) / f"{mode}-{round_}", timeout))
    return results


def report(results: dict[str, list[Run]], timeout: float) -> tuple[str, bool]:
    base_s = max(r.seconds for r in results["good"])
    base_rss = max(r.rss_mib for r in results["good"])
    lines = [
        "| answer | exit codes | worst wall (s) | vs good | worst peak RSS (MiB) | vs good |",
        "|---|---|---|---|---|---|",
    ]
    for mode, runs in results.items():
        worst_s, worst_rss = max(r.seconds for r in runs), max(r.rss_mib for r in runs)
        codes = ", ".join(str(c) for c in sorted({r.code for r in runs}))
        bad = [k for k in ("leak", "partial", "overwritten") if any(getattr(r, k) for r in runs)]
        lines.append(
            f"| {mode} | {codes}{' ' + ', '.join(bad) if bad else ''} | {worst_s:.1f} | "
            f"{worst_s / base_s:.1f}x | {worst_rss:.0f} | {worst_rss / base_rss:.2f}x |"
        )
    every = [r for runs in results.values() for r in runs]
    worst_s, worst_rss = max(r.seconds for r in every), max(r.rss_mib for r in every)
    exit_1 = sum(r.code == 1 for r in every)
    files = sum(r.partial or r.overwritten for r in every)
    leaks = sum(r.leak for r in every)
    ok = worst_s <= timeout + SLACK and worst_rss < RSS_TARGET_MIB and not (exit_1 or files or leaks)
    summary = (
        f"{len(every)} runs ({len(results)} answers) at --timeout {timeout:g}: worst wall {worst_s:.1f} s "
        f"(target <= {timeout + SLACK:g} s), worst peak RSS {worst_rss:.0f} MiB (target < {RSS_TARGET_MIB}), "
        f"exit 1: {exit_1}, partial or overwritten files: {files}, runs with a key piece in any output: "
        f"{leaks}. {'All targets met.' if ok else 'TARGETS MISSED.'}"
    )
    return summary + "\n\n" + "\n".join(lines), ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, and leave bench/README.md alone")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    table = answers()
    server = Server(table)
    try:
        results = measure(server, list(table), 1 if args.quick else args.rounds, args.timeout)
    finally:
        server.stop.set()
    text, ok = report(results, args.timeout)
    print(text)
    if not args.quick:
        readme.replace_section("hostile: last results", text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
