"""Hostile servers on real loopback sockets: the deadline holds, memory is bounded, no exit 1, no key leaks.

Each server here is a few lines of stdlib socket code that misbehaves one way: trickles bytes, never
answers, redirects in a loop, sends compression bombs, lies about its encoding, nests JSON, baits a
regular expression, echoes the key, or sends pictures in awkward modes. Wall-time bounds are behaviour
bounds (deadline + 2 s, generous), not benchmarks; memory is measured in a child process (wait4).
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from helpers import Handler, RawServer, http_response
from image_gen_local.cli import main

KEY = "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0ZYXWVUTSRQ"
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8, 9}


def picture_answer(data: bytes) -> bytes:
    return http_response(200, json.dumps({"data": [{"b64_json": base64.b64encode(data).decode()}]}))


def png(
    size: tuple[int, int] = (1024, 1024), mode: str = "RGB", colour: object = "teal", **save: object
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, save.pop("format", "PNG"), **save)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def make(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def send(data: bytes) -> Handler:
    return lambda conn, path, body: conn.sendall(data)


def on_images(data: bytes, models: bytes | None = None) -> Handler:
    """`data` for the image call; /models answers 404 (an unknown server is driven like Antigravity)."""

    def handler(conn: socket.socket, path: str, body: bytes) -> None:
        conn.sendall(data if not path.endswith("/models") else (models or http_response(404, "")))

    return handler


def trickle(data: bytes, every: float = 0.2) -> Handler:
    def handler(conn: socket.socket, path: str, body: bytes) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(every)

    return handler


def silent(conn: socket.socket, path: str, body: bytes) -> None:
    time.sleep(30)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run(server: RawServer | str, out: Path, *args: str, timeout: float = 3.0) -> Result:
    url = server if isinstance(server, str) else server.url
    stdout, stderr = io.StringIO(), io.StringIO()
    started = time.monotonic()
    argv = [*args] if args and args[0] in ("doctor",) else ["a lighthouse", *args, "--output-dir", str(out)]
    code = main([*argv, "--base-url", url, "--timeout", str(timeout)], stdout=stdout, stderr=stderr)
    return Result(int(code), stdout.getvalue(), stderr.getvalue(), time.monotonic() - started)


def assert_clean(result: Result, out: Path, timeout: float = 3.0) -> None:
    assert result.code in DOCUMENTED, result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    assert result.seconds < timeout + 2, f"{result.seconds:.1f} s"
    leftovers = [p for p in out.glob("*")] if out.exists() else []
    assert all(not p.name.startswith(".") and p.suffix != ".part" for p in leftovers), leftovers


# --- 1. the deadline is absolute ----------------------------------------------------------------------------

TRICKLES = {
    "the status line": http_response(200, "{}"),
    "the headers": b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n",
    "a 200 body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"{" * 1000,
    "an error body": b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n" + b"e" * 1000,
}


@pytest.mark.parametrize("where", list(TRICKLES))
def test_a_server_trickling_one_byte_at_a_time_cannot_outlast_the_deadline(serve, tmp_path, where):
    data = TRICKLES[where] if where != "the status line" else b"HTTP/1.1 200 OK" + b" " * 1000
    result = run(serve(trickle(data)), tmp_path, timeout=2)
    assert_clean(result, tmp_path, 2)
    assert result.code == 8, result.stderr


def test_a_server_that_never_answers_ends_at_the_deadline_with_exit_8(serve, tmp_path):
    result = run(serve(silent), tmp_path, timeout=2)
    assert_clean(result, tmp_path, 2)
    assert result.code == 8 and "--timeout" in result.stderr


def test_a_probe_that_eats_the_whole_deadline_never_reaches_the_socket_as_a_negative_timeout(serve, tmp_path):
    def handler(conn: socket.socket, path: str, body: bytes) -> None:
        if path.endswith("/models"):
            time.sleep(30)
        conn.sendall(picture_answer(png()))

    result = run(serve(handler), tmp_path, timeout=0.5)
    assert_clean(result, tmp_path, 0.5)
    assert result.code == 8


def test_a_hanging_picture_download_is_a_deadline_not_a_broken_answer(serve, tmp_path):
    hang = serve(silent)
    answer = http_response(200, json.dumps({"data": [{"url": f"{hang.url}/picture.png"}]}))
    result = run(serve(on_images(answer)), tmp_path, timeout=2)
    assert_clean(result, tmp_path, 2)
    assert result.code == 8, result.stderr


def test_a_redirect_loop_is_not_an_image_api_not_overload(serve, tmp_path):
    server = serve(lambda conn, path, body: conn.sendall(http_response(302, "", {"Location": path})))
    result = run(server, tmp_path)
    assert_clean(result, tmp_path)
    assert result.code == 3 and "redirect" in result.stderr, result.stderr


@pytest.mark.parametrize("timeout", ["0.2", "1e12"])
def test_extreme_timeouts_behave(serve, tmp_path, timeout):
    result = run(serve(on_images(picture_answer(png()))), tmp_path, timeout=float(timeout))
    assert result.code in (0, 8) and "Traceback" not in result.stderr, result.stderr
    assert result.seconds < 5
    if timeout == "1e12":
        assert result.code == 0


# --- 2. memory is bounded -----------------------------------------------------------------------------------


def bomb(method: str, size: int = 1024 * 1024 * 1024) -> bytes:
    """`size` zero bytes compressed (about 1 MB for 1 GiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31 if method == "gzip" else 15)
    zeros = bytes(1024 * 1024)
    return b"".join(packer.compress(zeros) for _ in range(size // len(zeros))) + packer.flush()


# Spawned from a small launcher: Linux counts the spawning process's own high-water mark in a child's
# ru_maxrss, and pytest's is far above the target by the end of a full run.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = child.stderr.read()
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.buffer.write(err)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mib(url: str, out: Path, timeout: float) -> tuple[int, float, str]:
    """Run the real command in a child process: its exit code, peak RSS (MiB) and stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-m", "image_gen_local", "bomb", "--base-url", url, "--output-dir", str(out)]
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args, "--timeout", str(timeout)], capture_output=True, env=env
    )
    code, rss = launched.stdout.split()
    return int(code), int(rss) / 1024, launched.stderr.decode()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {method: bomb(method) for method in ("gzip", "deflate")}


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("method", ["gzip", "deflate"])
def test_a_compression_bomb_on_any_status_stays_under_300_mb(serve, tmp_path, bombs, status, method):
    answer = http_response(status, bombs[method], {"Content-Encoding": method})
    code, peak, stderr = peak_rss_mib(serve(on_images(answer)).url, tmp_path, 3)
    assert peak < 300, f"{peak:.0f} MiB"
    assert code == (6 if status == 200 else 5), stderr


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "deflate"])
def test_a_content_encoding_that_lies_is_a_broken_answer(serve, tmp_path, encoding):
    answer = http_response(200, '{"data": []}', {"Content-Encoding": encoding})
    result = run(serve(on_images(answer)), tmp_path)
    assert_clean(result, tmp_path)
    assert result.code == 6, result.stderr


def test_json_nested_100_000_deep_is_a_classified_failure(serve, tmp_path):
    nested = "[" * 100_000 + "]" * 100_000
    models = http_response(200, '{"data": ' + nested + "}")
    server = serve(on_images(http_response(200, nested), models=models))
    result = run(server, tmp_path)
    assert_clean(result, tmp_path)
    assert result.code == 6


def test_markdown_bait_is_parsed_in_linear_time(serve, tmp_path):
    bait = {"choices": [{"message": {"content": "![" * 200_000 + "](" * 50_000}}]}
    result = run(serve(on_images(http_response(200, json.dumps(bait)))), tmp_path, timeout=10)
    assert_clean(result, tmp_path, 10)
    assert result.code == 6 and result.seconds < 8


# --- 3. every answer has a documented exit code -----------------------------------------------------------

SHAPES = [
    ('{"choices": 5}', 6),
    ('{"choices": [{"message": {"content": 5, "images": 5}}]}', 6),
    ('{"data": 5}', 6),
    ('{"data": [5, "x", null]}', 6),
    ("[1, 2, 3]", 6),
    ('"just a string"', 6),
    ('{"error": 5}', 6),
]


@pytest.mark.parametrize(("body", "code"), SHAPES)
def test_json_of_the_wrong_shape_has_a_documented_exit_code(serve, tmp_path, body, code):
    result = run(serve(on_images(http_response(200, body))), tmp_path)
    assert_clean(result, tmp_path)
    assert result.code == code, result.stderr


def test_a_models_list_of_the_wrong_shape_breaks_no_command(serve, tmp_path):
    server = serve(on_images(picture_answer(png()), models=http_response(200, '{"data": 5}')))
    assert run(server, tmp_path).code == 0
    doctor = run(server, tmp_path, "doctor")
    assert doctor.code in DOCUMENTED and "unexpected" not in doctor.stderr + doctor.stdout


def test_an_error_body_cut_short_is_classified_by_its_status(serve, tmp_path):
    cut = b"HTTP/1.1 401 No\r\nContent-Length: 5000\r\n\r\n" + b"bad key"
    result = run(serve(on_images(cut)), tmp_path)
    assert_clean(result, tmp_path)
    assert result.code == 4, result.stderr


def test_a_200_carrying_a_429_error_is_retried_like_a_429(serve, tmp_path):
    server = serve(on_images(http_response(200, '{"error": {"code": 429, "message": "slow down"}}')))
    result = run(server, tmp_path, timeout=4)
    assert_clean(result, tmp_path, 4)
    assert result.code == 5 and len([p for p in server.requests if "images" in p]) >= 2


# --- 4. retries cannot be turned into a storm -------------------------------------------------------------

STORMS = [
    {"Retry-After": "0"},
    {"Retry-After": "-5"},
    {"Retry-After": "nan"},
    {"Retry-After": "inf"},
    {},  # with a retryDelay of "0s" in the body
]


@pytest.mark.parametrize("headers", STORMS)
def test_a_zero_or_absurd_stated_wait_does_not_disable_backoff(serve, tmp_path, headers):
    body = '{"error": {"message": "quota", "details": [{"retryDelay": "0s"}]}}'
    server = serve(on_images(http_response(429, body, headers)))
    result = run(server, tmp_path, timeout=6)
    assert_clean(result, tmp_path, 6)
    attempts = len([p for p in server.requests if "images" in p])
    assert result.code == 5 and 2 <= attempts <= 7, attempts  # a floor of 1 s per wait: no storm


def test_a_stated_wait_beyond_the_deadline_is_reported_with_the_wait_asked_for(serve, tmp_path):
    server = serve(on_images(http_response(429, "busy", {"Retry-After": "120"})))
    result = run(server, tmp_path, timeout=3)
    assert result.code == 5 and "asked to wait 120 s" in result.stderr, result.stderr


# --- 5. secrets stay secret, result lines stay true --------------------------------------------------------


def key_forms(key: str) -> str:
    encoded = base64.b64encode(f"Bearer {key}".encode()).decode()
    return (
        f"{'x' * 220} token {key} rejected; url=?k={urllib.parse.quote(key)} "
        f"auth={encoded} json={json.dumps(key + chr(34))[1:-1]}"
    )


@pytest.mark.parametrize("status", [400, 401, 500, 200])
def test_the_key_never_leaks_in_any_form_even_past_the_trim(serve, tmp_path, status):
    words = key_forms(KEY)
    body = json.dumps({"error": {"message": words}}) if status == 200 else words
    server = serve(on_images(http_response(status, body)))
    result = run(server, tmp_path, "--api-key", KEY, "--json", timeout=2)
    output = result.stdout + result.stderr
    leaked = [KEY[i : i + 6] for i in range(len(KEY) - 5) if KEY[i : i + 6] in output]
    assert not leaked, output


@pytest.mark.parametrize("key", ["tmp", "2026", "png"])
def test_a_short_key_never_corrupts_the_printed_path(serve, tmp_path, key):
    out = tmp_path / "tmp-2026"
    result = run(serve(on_images(picture_answer(png()))), out, "--api-key", key)
    assert result.code == 0, result.stderr
    path = Path(result.stdout.strip().removeprefix("[IMAGE_PATH]").removesuffix("[/IMAGE_PATH]"))
    assert path.is_file() and str(out) in str(path)


def test_terminal_escape_sequences_from_a_server_are_neutralised(serve, tmp_path):
    server = serve(on_images(http_response(400, "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\u202etxt.exe")))
    result = run(server, tmp_path)
    assert result.code == 3
    assert not any(c in result.stderr for c in "\x1b\x07\x9b\u202e"), repr(result.stderr)


# --- 6. answer pictures: the right way up, in the right colours, not degenerate --------------------------


def rotated_jpeg() -> bytes:
    """A 16:9 picture stored sideways (768x1376) with EXIF orientation 6: a viewer shows 1376x768."""
    image = Image.new("RGB", (768, 1376), "navy")
    exif = image.getexif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_an_answer_with_exif_orientation_is_turned_upright_before_any_geometry(serve, tmp_path):
    result = run(serve(on_images(picture_answer(rotated_jpeg()))), tmp_path, "--aspect-ratio", "16:9")
    assert result.code == 0, result.stderr
    with Image.open(result.stdout.strip()[12:-13]) as saved:
        assert saved.size == (1376, 768) and "cropped" not in result.stderr


def sixteen_bit_grey() -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (1024, 1024), 20000).save(out, "PNG")
    return out.getvalue()


def palette_with_transparency() -> bytes:
    image = Image.new("P", (1024, 1024), 1)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    out = io.BytesIO()
    image.save(out, "PNG", transparency=0)
    return out.getvalue()


MODES = {
    "CMYK": lambda: png(mode="CMYK", colour=(0, 255, 255, 0), format="JPEG"),
    "16-bit grey": sixteen_bit_grey,
    "palette with transparency": palette_with_transparency,
    "LA": lambda: png(mode="LA", colour=(90, 255)),
    "RGBA": lambda: png(mode="RGBA", colour=(0, 128, 0, 255)),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("ext", ["jpg", "webp", "png", "gif"])
def test_every_answer_mode_converts_to_the_output_format_and_keeps_the_picture(serve, tmp_path, mode, ext):
    target = tmp_path / f"cover.{ext}"
    result = run(serve(on_images(picture_answer(MODES[mode]()))), tmp_path, "-o", str(target))
    assert result.code == 0, result.stderr
    with Image.open(target) as saved:
        grey = saved.point(lambda v: v / 256).convert("L") if saved.mode.startswith("I") else saved
        colours = grey.convert("RGB").getcolors(1 << 20) or []  # a 16-bit PNG kept as such is read 16-bit
    dominant = max(colours)[1]
    assert (dominant != (255, 255, 255) and dominant != (0, 0, 0)) or mode == "LA", (mode, dominant)


def test_an_animated_answer_keeps_its_first_frame_and_says_so(serve, tmp_path):
    frames = [Image.new("RGB", (1024, 1024), c) for c in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    result = run(serve(on_images(picture_answer(out.getvalue()))), tmp_path)
    assert result.code == 0 and "first" in result.stderr, result.stderr
    with Image.open(result.stdout.strip()[12:-13]) as saved:
        assert getattr(saved, "n_frames", 1) == 1


@pytest.mark.parametrize("size", [(1, 1), (20000, 1), (1, 5000)])
def test_a_degenerate_answer_is_not_a_picture(serve, tmp_path, size):
    result = run(serve(on_images(picture_answer(png(size)))), tmp_path)
    assert_clean(result, tmp_path)
    assert result.code == 6 and not list(tmp_path.glob("*.png")), result.stderr
