"""What the emulator's faults put on the wire: the words, bodies, bombs and awkward pictures the fault
table in catalogue.py is made of, and the `Hit` a fault's behaviour is handed.

Kept apart from the table so it stays one readable page: a fault there is a name, a line of description,
what a client should do, and one of the behaviours below.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from ..upstream import CAPACITY_EXHAUSTED_BODY, VALIDATION_REQUIRED
from .intake import Request
from .replies import Reply, chat_completion, json_reply
from .rules import FORMATS
from .synthetic import encode_picture

GOOGLE_429 = (
    "Max retries exhausted. Last error: Upstream error 429 Too Many Requests: "
    '{{"error": {{"code": 429, "message": "Resource has been exhausted (e.g. check quota).", '
    '"status": "RESOURCE_EXHAUSTED", "details": [{{"@type": "type.googleapis.com/google.rpc.RetryInfo", '
    '"retryDelay": "{delay}s"}}]}}}}'
)
CAPACITY_503 = CAPACITY_EXHAUSTED_BODY
VALIDATION_403 = (
    'Upstream error 403 Forbidden: {"error": {"code": 403, "message": "'
    + VALIDATION_REQUIRED
    + ": verify this "
    'account at https://accounts.google.com/signin/continue", "status": "PERMISSION_DENIED"}}'
)
SPA_PAGE = (
    "<!doctype html><html><head><title>Antigravity Tools</title></head><body><div id=app></div></body></html>"
)


def huge_reply(size: int) -> Reply:
    """A JSON answer of `size` bytes generated while it is sent, never held in memory."""
    head = b'{"created": 1, "data": [{"b64_json": "'
    tail = b'"}]}'
    filler = b"A" * (1024 * 1024)

    def chunks() -> Iterator[bytes]:
        yield head
        left = size - len(head) - len(tail)
        while left > 0:
            piece = filler[: min(left, len(filler))]
            left -= len(piece)
            yield piece
        yield tail

    return Reply(200, content_type="application/json", chunks=chunks, length=size)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, rows: int | None = None) -> bytes:
    """A grey RGB PNG; with `rows`, only that many rows of pixel data (a header that lies about the size)."""
    count = height if rows is None else rows
    raw = b"".join(b"\x00" + bytes([128, 128, 128]) * width for _ in range(count))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def draft_picture() -> tuple[bytes, str]:
    """A small grey picture standing for a draft "thought" image."""
    return png(256, 256), "image/png"


# --- compression bombs: 1 MiB of zeros deflates to ~1 KB, repeated --------------------------------------

MIB = 1024 * 1024


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, row) for row in matrix]


def crc32_combine(first: int, second: int, length: int) -> int:
    """zlib's crc32_combine: the CRC-32 of A+B from crc(A), crc(B) and len(B), without reading A or B."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while length:
        even = _gf2_square(odd)
        if length & 1:
            first = _gf2_times(even, first)
        length >>= 1
        if not length:
            break
        odd = _gf2_square(even)
        if length & 1:
            first = _gf2_times(odd, first)
        length >>= 1
    return first ^ second


def _zeros_crc32(mib: int) -> int:
    """CRC-32 of `mib` MiB of zeros, by doubling: no gigabyte is ever read."""
    unit, size, total = zlib.crc32(bytes(MIB)), MIB, 0
    while mib:
        if mib & 1:
            total = crc32_combine(total, unit, size)
        unit, size, mib = crc32_combine(unit, unit, size), size * 2, mib >> 1
    return total


def compression_bomb(mib: int, encoding: str) -> bytes:
    """A valid gzip or zlib (HTTP `deflate`) stream of `mib` MiB of zeros, about mib KB long, in milliseconds.

    With a full flush the deflate block for each MiB is byte-aligned and identical, so it is made once and
    repeated; an empty final block and the checksum close the stream.
    """
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(MIB)) + packer.flush(zlib.Z_FULL_FLUSH)
    body = block * mib + b"\x03\x00"
    size = mib * MIB
    if encoding == "gzip":
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        return header + body + struct.pack("<II", _zeros_crc32(mib), size & 0xFFFFFFFF)
    return b"\x78\xda" + body + struct.pack(">I", (size % 65521) << 16 | 1)  # Adler-32 of zeros


def bomb_reply(status: int, encoding: str, mib: int) -> Reply:
    return Reply(
        status,
        compression_bomb(mib, encoding),
        headers={"Content-Encoding": encoding},
        content_type="application/json",
    )


# --- words and bodies that bait a client --------------------------------------------------------------

ESCAPES = "Bad request: \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\u202etxt.exe"


def key_echo(key: str | None) -> str:
    """The key presented, echoed in the forms a server or gateway may use, the first past a 240-char trim."""
    key = key or "(no key presented)"
    encoded = base64.b64encode(f"Bearer {key}".encode()).decode()
    return (
        f"{'x' * 220} invalid api key {key} rejected; url=?key={urllib.parse.quote(key)} "
        f"auth={encoded} json={json.dumps(key + chr(34))[1:-1]}"
    )


def nested_json(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def markdown_bait() -> dict[str, object]:
    """400 KB of `![` in a chat answer: a backtracking markdown pattern would take hours on it."""
    return {"choices": [{"message": {"role": "assistant", "content": "![" * 200_000 + "](" * 50_000}}]}


# --- pictures in awkward forms --------------------------------------------------------------------------

Pictures = list[tuple[bytes, str]]


def _opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _saved(image: Image.Image, fmt: str, mime: str, **options: Any) -> tuple[bytes, str]:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue(), mime


def rotated(pictures: Pictures) -> Pictures:
    """Each picture stored a quarter turn anticlockwise with EXIF orientation 6, as cameras store photos:
    shown upright by any viewer that applies orientation, sideways by one that does not."""
    names = {mime: name for name, mime, _ in FORMATS}
    return [
        encode_picture(_opened(data).transpose(Image.Transpose.ROTATE_90), names.get(mime, "png"), 6)
        for data, mime in pictures
    ]


def cmyk(pictures: Pictures) -> Pictures:
    return [_saved(_opened(data).convert("CMYK"), "JPEG", "image/jpeg", quality=90) for data, _ in pictures]


def sixteen_bit(pictures: Pictures) -> Pictures:
    """Grey, 16 bits per sample (PNG `I;16`), as scientific and some HDR tools write."""
    return [
        _saved(_opened(data).convert("L").point(lambda v: v * 257, "I").convert("I;16"), "PNG", "image/png")
        for data, _ in pictures
    ]


def animated(pictures: Pictures) -> Pictures:
    """An animated GIF whose first frame is the picture, then two flat frames."""
    out = []
    for data, _ in pictures:
        first = _opened(data).convert("RGB")
        rest = [Image.new("RGB", first.size, colour) for colour in ("crimson", "navy")]
        out.append(_saved(first, "GIF", "image/gif", save_all=True, append_images=rest, duration=500))
    return out


def transparent(pictures: Pictures) -> Pictures:
    """The picture with every pixel fully transparent: the right size, nothing to see."""
    out = []
    for data, _ in pictures:
        image = _opened(data).convert("RGBA")
        image.putalpha(0)
        out.append(_saved(image, "PNG", "image/png", compress_level=1))
    return out


# --- the behaviours the fault table is made of ---------------------------------------------------------

HANG_PATH = "/emulator/hang"  # GET /emulator/hang/N answers a small picture after N seconds
LOOP_PATH = "/emulator/redirect-loop"  # answers every method with a redirect to itself

# Wraps pictures the way the route answers (images API data or chat markdown).
Answer = Callable[[Pictures], Reply]


@dataclass(frozen=True)
class Hit:
    """What a fault's behaviour sees: its argument, the request it hits, and for a late fault the server's
    own answer (`reply`, and the `pictures` in it)."""

    value: float | None
    route: str
    model: str
    answer: Answer
    request: Request
    reply: Reply | None = None
    pictures: Pictures | None = None


Behaviour = Callable[[Hit], Reply]


def late(spoil: Callable[[Reply, Hit], Reply], any_status: bool = False, pictures: bool = False) -> Behaviour:
    """A late behaviour: it spoils a successful answer (any answer with `any_status`; only one with
    pictures in it with `pictures`) and leaves a failed one alone, since there is nothing to spoil."""

    def act(hit: Hit) -> Reply:
        if hit.reply is None:
            raise ValueError("a late fault needs the server's own answer")
        if not any_status and hit.reply.status != 200:
            return hit.reply
        if pictures and hit.pictures is None:
            return hit.reply
        return spoil(hit.reply, hit)

    return act


def reshaped(change: Callable[[Pictures], Pictures]) -> Behaviour:
    """A late behaviour that sends the server's own pictures in another form."""
    return late(lambda reply, hit: hit.answer(change(hit.pictures or [])), pictures=True)


# The server's own answer, `value` seconds later (`slow`, `models-slow`).
DELAYED = late(lambda reply, hit: replace(reply, delay=reply.delay + (hit.value or 0)), any_status=True)


def content_filter(hit: Hit) -> Reply:
    body = chat_completion(hit.model, "I can't help create that image.", 0, "chatcmpl-fault")
    body["choices"][0]["finish_reason"] = "content_filter"
    return json_reply(200, body)


def truncated(reply: Reply, hit: Hit) -> Reply:
    payload = reply.payload
    return replace(reply, body=payload[: max(1, len(payload) // 2)])


def url_answer(url: str) -> Reply:
    return json_reply(200, {"created": 0, "data": [{"url": url}]})


def hang_url(hit: Hit) -> Reply:
    host = hit.request.header("Host") or "127.0.0.1"
    return url_answer(f"http://{host}{HANG_PATH}/{hit.value or 0:g}")


def helper_reply(path: str) -> Reply | None:
    """The answers of the faults' own endpoints (any method, no key needed), or None for other paths."""
    bare = path.split("?", 1)[0]
    if bare == LOOP_PATH:
        return Reply(302, b"", headers={"Location": LOOP_PATH}, content_type="")
    if bare.startswith(HANG_PATH + "/"):
        try:
            seconds = float(bare.removeprefix(HANG_PATH + "/"))
        except ValueError:
            return None
        return Reply(200, draft_picture()[0], content_type="image/png", delay=max(0.0, seconds))
    return None


def mib(hit: Hit) -> int:
    return max(1, int(hit.value or 1))
