"""What the emulator's faults put on the wire: the words, bodies and broken pictures the fault table uses.

Kept apart from the table in faults.py so the table stays one readable page: a fault there is a name, a
line of description, what a client should do, and one of the builders below.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from ..upstream import CAPACITY_EXHAUSTED, VALIDATION_REQUIRED
from .replies import Reply

GOOGLE_429 = (
    "Max retries exhausted. Last error: Upstream error 429 Too Many Requests: "
    '{{"error": {{"code": 429, "message": "Resource has been exhausted (e.g. check quota).", '
    '"status": "RESOURCE_EXHAUSTED", "details": [{{"@type": "type.googleapis.com/google.rpc.RetryInfo", '
    '"retryDelay": "{delay}s"}}]}}}}'
)
CAPACITY_503 = (
    "Max retries exhausted. Last error: Upstream error 503 Service Unavailable: "
    '{"error": {"code": 503, "message": "No capacity available for model on the server", '
    '"status": "UNAVAILABLE", "details": [{"reason": "' + CAPACITY_EXHAUSTED + '"}]}}'
)
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
