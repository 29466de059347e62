"""Faults the emulator can inject: the ways the real proxy and its network have been seen to fail.

One table, `CATALOGUE`, says everything about a fault: its stable name (`429-retry-delay`, `reset-during`,
`bomb`, ...), a line of description, what a good client does about it, its optional numeric argument
(`slow:30`, `huge:500`) and its behaviour, a function from the request it hits to the answer sent. The
parser, `image-gen emulator --list-faults`, the control endpoint and the injection all read that table.
A `FaultPlan` hands faults out per image request: a scripted sequence first, then at random with a rate
over a pool. Pure, apart from the plan's lock and random generator.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..upstream import ALL_EXHAUSTED, NO_IMAGES, NO_QUOTA, PROXY_DISABLED
from .rules import NOT_FOUND_MESSAGE, Reply, chat_completion, empty, json_reply, plain
from .tricks import (
    CAPACITY_503,
    GOOGLE_429,
    SPA_PAGE,
    VALIDATION_403,
    draft_picture,
    huge_reply,
    png,
)

OK = "ok"  # in a script: answer normally


Pictures = list[tuple[bytes, str]]
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
    reply: Reply | None = None
    pictures: Pictures | None = None


Behaviour = Callable[[Hit], Reply]


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    recovery: str  # what a good client does: retry, retry-once, other-model, take-last or stop
    act: Behaviour
    late: bool = False  # changes the server's own answer instead of replacing it
    default: float | None = None  # default argument


def _late(
    spoil: Callable[[Reply, Hit], Reply], any_status: bool = False, pictures: bool = False
) -> Behaviour:
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


def _content_filter(hit: Hit) -> Reply:
    body = chat_completion(hit.model, "I can't help create that image.", 0, "chatcmpl-fault")
    body["choices"][0]["finish_reason"] = "content_filter"
    return json_reply(200, body)


def _truncated(reply: Reply, hit: Hit) -> Reply:
    payload = reply.payload
    return replace(reply, body=payload[: max(1, len(payload) // 2)])


_MODEL_MISSING = {"error": {"message": NOT_FOUND_MESSAGE, "type": "upstream_error", "code": 404}}

CATALOGUE: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "429-retry-delay",
            "429, plain text with Google's JSON and retryDelay (s)",
            "retry",
            lambda hit: plain(429, GOOGLE_429.format(delay=f"{hit.value:g}")),
            default=1.17,
        ),
        Fault(
            "429-retry-after",
            "429 with a Retry-After header (s)",
            "retry",
            lambda hit: Reply(429, "Too Many Requests", headers={"Retry-After": f"{hit.value:g}"}),
            default=1,
        ),
        Fault(
            "429-exhausted",
            "429 All accounts exhausted",
            "retry",
            lambda hit: plain(429, f"{ALL_EXHAUSTED}. Last error: 429 Too Many Requests: Quota exhausted"),
        ),
        Fault("503-capacity", "503 MODEL_CAPACITY_EXHAUSTED", "retry", lambda hit: plain(503, CAPACITY_503)),
        Fault(
            "500",
            "500 Internal error encountered.",
            "retry",
            lambda hit: plain(500, "Internal error encountered."),
        ),
        Fault(
            "reset-before",
            "connection reset before any answer",
            "retry",
            lambda hit: Reply(200, reset="before"),
        ),
        Fault(
            "reset-during",
            "connection reset in the middle of the body",
            "retry",
            _late(lambda reply, hit: replace(reply, reset="during")),
            late=True,
        ),
        Fault(
            "truncated-json", "200 with the JSON body cut in half", "retry-once", _late(_truncated), late=True
        ),
        Fault(
            "502-no-image",
            "502 No images generated (usually a silent safety block)",
            "retry-once",
            lambda hit: plain(502, NO_IMAGES),
        ),
        Fault("empty-data", "200 with no picture in it (data: [])", "retry-once", lambda hit: hit.answer([])),
        Fault(
            "partial",
            "200 with one picture fewer than asked",
            "retry-once",
            _late(lambda reply, hit: hit.answer((hit.pictures or [])[:-1]), pictures=True),
            late=True,
        ),
        Fault(
            "content-filter",
            "200 chat answer, text only, finish_reason content_filter",
            "stop",
            _content_filter,
        ),
        Fault(
            "drafts",
            "two draft pictures before the final one",
            "take-last",
            _late(
                lambda reply, hit: hit.answer([draft_picture(), draft_picture(), *(hit.pictures or [])]),
                pictures=True,
            ),
            late=True,
        ),
        Fault(
            "slow",
            "the answer comes after a delay (s)",
            "stop",
            _late(lambda reply, hit: replace(reply, delay=reply.delay + (hit.value or 0)), any_status=True),
            late=True,
            default=30,
        ),
        Fault(
            "503-disabled",
            "503 Proxy service is currently disabled",
            "stop",
            lambda hit: plain(503, PROXY_DISABLED),
        ),
        Fault(
            "502-no-quota",
            "502 No accounts available with quota for model",
            "other-model",
            lambda hit: plain(502, f"{NO_QUOTA}: {hit.model}"),
        ),
        Fault("401", "401 with an empty body", "stop", lambda hit: empty(401)),
        Fault(
            "403-validation",
            "403 VALIDATION_REQUIRED (account needs verification)",
            "stop",
            lambda hit: plain(403, VALIDATION_403),
        ),
        Fault(
            "404-model",
            "404 JSON Requested entity was not found (model missing)",
            "other-model",
            lambda hit: json_reply(404, _MODEL_MISSING),
        ),
        Fault("413", "413 length limit exceeded", "stop", lambda hit: plain(413, "length limit exceeded")),
        Fault(
            "html",
            "200 with an HTML page",
            "stop",
            lambda hit: Reply(200, SPA_PAGE, content_type="text/html; charset=utf-8"),
        ),
        Fault(
            "bad-base64",
            "200 with base64 that is not a picture",
            "retry-once",
            lambda hit: hit.answer([(bytes(range(256)) * 64, "image/png")]),
        ),
        Fault(
            "corrupt-png",
            "200 with a truncated PNG",
            "retry-once",
            lambda hit: hit.answer([(png(256, 256)[:-600], "image/png")]),
        ),
        Fault(
            "bomb",
            "200 with a PNG declaring 50000x50000 pixels",
            "stop",
            lambda hit: hit.answer([(png(50_000, 50_000, rows=1), "image/png")]),
        ),
        Fault(
            "huge",
            "200 with a body of N MB, streamed (MB)",
            "stop",
            lambda hit: huge_reply(int((hit.value or 500) * 1024 * 1024)),
            default=500,
        ),
    )
}
RECOVERIES = ("retry", "retry-once", "other-model", "take-last", "stop")
# Faults a healthy-but-busy real server produces: the random pool by default.
TRANSIENT = tuple(name for name, fault in CATALOGUE.items() if fault.recovery == "retry")


def listing() -> list[str]:
    """One line per fault, for `image-gen emulator --list-faults`: name, what a client does, description."""
    lines = []
    for fault in CATALOGUE.values():
        default = f" (default {fault.default:g})" if fault.default is not None else ""
        lines.append(f"{fault.name:16} {fault.recovery:12} {fault.summary}{default}")
    return lines


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


def inject(
    spec: FaultSpec,
    route: str,
    model: str,
    answer: Answer,
    reply: Reply | None = None,
    pictures: Pictures | None = None,
) -> Reply:
    """The answer a fault gives: an early fault replaces the server's answer, so it is called without one;
    a late fault changes the server's own `reply` (delays it, cuts it, drops or adds pictures)."""
    if spec.fault.late != (reply is not None):
        kind = "late" if spec.fault.late else "early"
        raise ValueError(f"{spec.name} is a {kind} fault")
    return spec.fault.act(Hit(spec.value, route, model, answer, reply, pictures))
