"""Faults the emulator can inject: the ways the real proxy and its network have been seen to fail.

Each fault has a stable name (`429-retry-delay`, `reset-during`, `bomb`, ...), an optional numeric argument
(`slow:30`, `huge:500`), and says whether a client should recover from it by retrying. A `FaultPlan` hands
them out per image request: a scripted sequence first, then at random with a rate over a pool. Pure, apart
from the plan's lock and random generator.
"""

from __future__ import annotations

import random
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..upstream import (
    ALL_EXHAUSTED,
    CAPACITY_EXHAUSTED,
    NO_IMAGES,
    NO_QUOTA,
    PROXY_DISABLED,
    VALIDATION_REQUIRED,
)
from .rules import NOT_FOUND_MESSAGE, Reply, chat_completion, empty, json_reply, plain

OK = "ok"  # in a script: answer normally


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    recovery: str  # what a good client does: retry, retry-once, other-model, take-last or stop
    late: bool = False  # changes the server's own answer instead of replacing it
    default: float | None = None  # default argument


_GOOGLE_429 = (
    "Max retries exhausted. Last error: Upstream error 429 Too Many Requests: "
    '{{"error": {{"code": 429, "message": "Resource has been exhausted (e.g. check quota).", '
    '"status": "RESOURCE_EXHAUSTED", "details": [{{"@type": "type.googleapis.com/google.rpc.RetryInfo", '
    '"retryDelay": "{delay}s"}}]}}}}'
)
_CAPACITY_503 = (
    "Max retries exhausted. Last error: Upstream error 503 Service Unavailable: "
    '{"error": {"code": 503, "message": "No capacity available for model on the server", '
    '"status": "UNAVAILABLE", "details": [{"reason": "' + CAPACITY_EXHAUSTED + '"}]}}'
)
_VALIDATION_403 = (
    'Upstream error 403 Forbidden: {"error": {"code": 403, "message": "'
    + VALIDATION_REQUIRED
    + ": verify this "
    'account at https://accounts.google.com/signin/continue", "status": "PERMISSION_DENIED"}}'
)
_SPA_PAGE = (
    "<!doctype html><html><head><title>Antigravity Tools</title></head><body><div id=app></div></body></html>"
)

CATALOGUE: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "429-retry-delay", "429, plain text with Google's JSON and retryDelay (s)", "retry", default=1.17
        ),
        Fault("429-retry-after", "429 with a Retry-After header (s)", "retry", default=1),
        Fault("429-exhausted", "429 All accounts exhausted", "retry"),
        Fault("503-capacity", "503 MODEL_CAPACITY_EXHAUSTED", "retry"),
        Fault("500", "500 Internal error encountered.", "retry"),
        Fault("reset-before", "connection reset before any answer", "retry"),
        Fault("reset-during", "connection reset in the middle of the body", "retry", late=True),
        Fault("truncated-json", "200 with the JSON body cut in half", "retry-once", late=True),
        Fault("502-no-image", "502 No images generated (usually a silent safety block)", "retry-once"),
        Fault("empty-data", "200 with no picture in it (data: [])", "retry-once"),
        Fault("partial", "200 with one picture fewer than asked", "retry-once", late=True),
        Fault("content-filter", "200 chat answer, text only, finish_reason content_filter", "stop"),
        Fault("drafts", "two draft pictures before the final one", "take-last", late=True),
        Fault("slow", "the answer comes after a delay (s)", "stop", late=True, default=30),
        Fault("503-disabled", "503 Proxy service is currently disabled", "stop"),
        Fault("502-no-quota", "502 No accounts available with quota for model", "other-model"),
        Fault("401", "401 with an empty body", "stop"),
        Fault("403-validation", "403 VALIDATION_REQUIRED (account needs verification)", "stop"),
        Fault("404-model", "404 JSON Requested entity was not found (model missing)", "other-model"),
        Fault("413", "413 length limit exceeded", "stop"),
        Fault("html", "200 with an HTML page", "stop"),
        Fault("bad-base64", "200 with base64 that is not a picture", "retry-once"),
        Fault("corrupt-png", "200 with a truncated PNG", "retry-once"),
        Fault("bomb", "200 with a PNG declaring 50000x50000 pixels", "stop"),
        Fault("huge", "200 with a body of N MB, streamed (MB)", "stop", default=500),
    )
}
RECOVERIES = ("retry", "retry-once", "other-model", "take-last", "stop")
# Faults a healthy-but-busy real server produces: the random pool by default.
TRANSIENT = tuple(name for name, fault in CATALOGUE.items() if fault.recovery == "retry")


@dataclass(frozen=True)
class FaultSpec:
    """One fault to inject, with its argument."""

    name: str
    arg: float | None = None

    @property
    def fault(self) -> Fault:
        return CATALOGUE[self.name]

    @property
    def value(self) -> float | None:
        return self.arg if self.arg is not None else self.fault.default

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg:g}"


def parse_spec(text: str) -> FaultSpec | None:
    """`name` or `name:number`; `ok` gives None (no fault). Raises ValueError naming the known faults."""
    name, _, arg = text.strip().partition(":")
    if name == OK:
        return None
    if name not in CATALOGUE:
        raise ValueError(f"unknown fault {name!r}; known: {OK}, {', '.join(CATALOGUE)}")
    try:
        return FaultSpec(name, float(arg) if arg else None)
    except ValueError:
        raise ValueError(f"fault {text!r}: the argument after ':' must be a number") from None


def parse_specs(text: str | Iterable[str]) -> list[FaultSpec | None]:
    items = text.split(",") if isinstance(text, str) else list(text)
    return [parse_spec(item) for item in items if item.strip()]


def parse_pool(text: str | Iterable[str]) -> tuple[str, ...]:
    """`transient`, `all`, or a list of fault names."""
    if isinstance(text, str) and text.strip() in ("transient", ""):
        return TRANSIENT
    if isinstance(text, str) and text.strip() == "all":
        return tuple(CATALOGUE)
    specs = [spec for spec in parse_specs(text) if spec is not None]
    return tuple(str(spec) for spec in specs)


class FaultPlan:
    """Hands out faults per image request: the script first, then at random. Thread-safe."""

    def __init__(
        self,
        script: Iterable[FaultSpec | Reply | None] = (),
        rate: float = 0.0,
        pool: Iterable[str] = TRANSIENT,
        seed: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._script: deque[FaultSpec | Reply | None] = deque(script)
        self.configure(rate=rate, pool=pool, seed=seed)

    def configure(
        self, rate: float | None = None, pool: Iterable[str] | None = None, seed: int | None = None
    ) -> None:
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"fault rate {rate} is not between 0 and 1")
                self.rate = rate
            if pool is not None:
                specs = [parse_spec(name) for name in pool]
                self.pool = tuple(spec for spec in specs if spec is not None)
            if seed is not None or not hasattr(self, "_rng"):
                self._rng = random.Random(seed)

    def push(self, items: Iterable[FaultSpec | Reply | None]) -> None:
        with self._lock:
            self._script.extend(items)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self.rate = 0.0

    def next(self) -> FaultSpec | Reply | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self.rate > 0 and self.pool and self._rng.random() < self.rate:
                return self._rng.choice(self.pool)
            return None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            script = ["reply" if isinstance(s, Reply) else str(s) if s else OK for s in self._script]
            return {
                "script": script,
                "rate": self.rate,
                "pool": [str(spec) for spec in self.pool],
                "catalogue": [
                    {"name": f.name, "summary": f.summary, "recovery": f.recovery, "default": f.default}
                    for f in CATALOGUE.values()
                ],
            }


# --- what each fault answers ---------------------------------------------------------------------------

Pictures = list[tuple[bytes, str]]
Answer = Callable[
    [Pictures], Reply
]  # wraps pictures the way the route answers (images data or chat markdown)


def early_reply(spec: FaultSpec, route: str, model: str, answer: Answer) -> Reply:
    """The answer of a fault that replaces the server's own."""
    name, value = spec.name, spec.value
    if name == "429-retry-delay":
        return plain(429, _GOOGLE_429.format(delay=f"{value:g}"))
    if name == "429-retry-after":
        return Reply(429, "Too Many Requests", headers={"Retry-After": f"{value:g}"})
    if name == "429-exhausted":
        return plain(429, f"{ALL_EXHAUSTED}. Last error: 429 Too Many Requests: Quota exhausted")
    if name == "503-capacity":
        return plain(503, _CAPACITY_503)
    if name == "500":
        return plain(500, "Internal error encountered.")
    if name == "reset-before":
        return Reply(200, reset="before")
    if name == "502-no-image":
        return plain(502, NO_IMAGES)
    if name == "empty-data":
        return answer([])
    if name == "content-filter":
        body = chat_completion(model, "I can't help create that image.", 0, "chatcmpl-fault")
        body["choices"][0]["finish_reason"] = "content_filter"
        return json_reply(200, body)
    if name == "503-disabled":
        return plain(503, PROXY_DISABLED)
    if name == "502-no-quota":
        return plain(502, f"{NO_QUOTA}: {model}")
    if name == "401":
        return empty(401)
    if name == "403-validation":
        return plain(403, _VALIDATION_403)
    if name == "404-model":
        error = {"message": NOT_FOUND_MESSAGE, "type": "upstream_error", "code": 404}
        return json_reply(404, {"error": error})
    if name == "413":
        return plain(413, "length limit exceeded")
    if name == "html":
        return Reply(200, _SPA_PAGE, content_type="text/html; charset=utf-8")
    if name == "bad-base64":
        return answer([(bytes(range(256)) * 64, "image/png")])
    if name == "corrupt-png":
        return answer([(_png(256, 256)[:-600], "image/png")])
    if name == "bomb":
        return answer([(_png(50_000, 50_000, rows=1), "image/png")])
    if name == "huge":
        return huge_reply(int((value or 500) * 1024 * 1024))
    raise ValueError(f"{name} is not an early fault")


def late_reply(spec: FaultSpec, reply: Reply, pictures: Pictures | None, answer: Answer) -> Reply:
    """Change the server's own answer: delay it, cut it, drop a picture, put drafts in front."""
    name = spec.name
    if name == "slow":
        return replace(reply, delay=reply.delay + (spec.value or 0))
    if reply.status != 200:
        return reply  # the request failed on its own: nothing to spoil
    if name == "reset-during":
        return replace(reply, reset="during")
    if name == "truncated-json":
        payload = reply.payload
        return replace(reply, body=payload[: max(1, len(payload) // 2)])
    if pictures is None:
        return reply
    if name == "partial":
        return answer(pictures[:-1])
    if name == "drafts":
        return answer([draft_picture(), draft_picture(), *pictures])
    raise ValueError(f"{name} is not a late fault")


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


def _png(width: int, height: int, rows: int | None = None) -> bytes:
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
    return _png(256, 256), "image/png"
