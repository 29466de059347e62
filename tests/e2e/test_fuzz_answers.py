"""Property: whatever a server answers, the command ends in time, with a documented exit code, no traceback,
and no partial file. Hypothesis generates the answers (status x headers x encodings x body shapes); a real
loopback socket serves each one to the real command (`image_gen_local.cli.main`). Seeded and bounded.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import time
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers import RawServer
from image_gen_local.cli import main

TIMEOUT = 1.0
DOCUMENTED = {0, 3, 4, 5, 6, 7, 8}


def _picture() -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "olive").save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


PICTURE = _picture()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
shapes = st.one_of(
    st.just({"data": [{"b64_json": PICTURE}]}),
    st.just({"data": [{"url": f"data:image/png;base64,{PICTURE}"}]}),
    st.just({"choices": [{"message": {"content": f"![x](data:image/png;base64,{PICTURE})"}}]}),
    st.just({"choices": [{"message": {"content": "![" * 5000}, "finish_reason": "stop"}]}),
    st.builds(lambda v: {"data": v}, json_values),
    st.builds(lambda v: {"choices": v}, json_values),
    st.builds(lambda v: {"error": v}, json_values),
    st.builds(lambda c: {"error": {"code": c, "message": "x"}}, st.integers(-1, 999) | st.text(max_size=6)),
    json_values,
)


def _body(kind: str, shape: object) -> bytes:
    if kind == "nested":
        return b"[" * 50_000 + b"]" * 50_000
    if kind == "html":
        return b"<!DOCTYPE html><html><head></head><body>login</body></html>"
    if kind == "event-stream":
        return f"data: {json.dumps(shape)}\n\ndata: [DONE]\n\n".encode()
    if kind == "huge":
        return b'{"data": [{"b64_json": "' + b"A" * 3_000_000 + b'"}]}'
    text = json.dumps(shape).encode()
    return text[: len(text) // 2] if kind == "truncated" else text


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    status = draw(
        st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 413, 418, 429, 500, 503])
    )
    kind = draw(st.sampled_from(["json", "json", "truncated", "nested", "html", "event-stream", "huge"]))
    body = _body(kind, draw(shapes))
    encoding = draw(st.sampled_from(["", "", "gzip", "deflate", "gzip-lie", "br", "zstd"]))
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    headers = {
        "Content-Type": "text/event-stream"
        if kind == "event-stream"
        else draw(st.sampled_from(["application/json", "text/plain", "text/html", ""]))
    }
    if encoding:
        headers["Content-Encoding"] = encoding.removesuffix("-lie")
    length = draw(st.sampled_from(["exact", "exact", "short", "long", "none"]))
    if length != "none":
        headers["Content-Length"] = str(len(body) + {"exact": 0, "short": -1, "long": 100}[length])
    retry = draw(st.sampled_from([None, "0", "-1", "nan", "inf", "1", "1e308", "soon"]))
    if retry is not None:
        headers["Retry-After"] = retry
    if status == 301:
        headers["Location"] = "/v1/images/generations"
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v)
    return f"HTTP/1.1 {status} X\r\n{lines}Connection: close\r\n\r\n".encode() + body


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    """Answers every request (the /models probe included) with the current example's `answer` bytes."""
    fuzz = RawServer(lambda conn, path, body: conn.sendall(fuzz.answer))  # type: ignore[attr-defined]
    fuzz.answer = b""  # type: ignore[attr-defined]
    yield fuzz
    fuzz.close()


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(answer=answers())
def test_any_server_answer_ends_in_time_with_a_documented_exit_code(server, tmp_path, answer):
    server.answer = answer
    run_dir = tmp_path / f"run-{time.monotonic_ns()}"
    os.environ["IMAGE_GEN_CACHE_DIR"] = str(run_dir / "cache")  # probe every time: /models is fuzzed too
    out, stdout, stderr = run_dir / "out", io.StringIO(), io.StringIO()
    started = time.monotonic()
    args = ["fuzz", "--base-url", server.url]
    code = main([*args, "--timeout", str(TIMEOUT), "--output-dir", str(out)], stdout=stdout, stderr=stderr)
    seconds = time.monotonic() - started
    assert code in DOCUMENTED, stderr.getvalue()
    assert "Traceback" not in stderr.getvalue() and "unexpected" not in stderr.getvalue(), stderr.getvalue()
    assert seconds < TIMEOUT + 2, seconds
    files = list(out.iterdir()) if out.exists() else []
    assert all(not f.name.startswith(".") for f in files) and len(files) == (code == 0), files
