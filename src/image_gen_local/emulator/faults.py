"""The faults the emulator injects, and the plan that hands them out.

What each fault is and does lives in one table, `catalogue.CATALOGUE`. Here: reading fault specs
(`name` or `name:number`, `ok` for "answer normally"), the `FaultPlan` that hands faults out, a scripted
sequence first, then at random with a rate over a pool, and `inject`, which applies one. Each scripted
item waits for a request of its kind: image requests take answers, `ok` and image faults; `/v1/models`
takes the faults aimed at it. Pure, apart from the plan's lock and random generator.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .catalogue import CATALOGUE as CATALOGUE
from .catalogue import IMAGES as IMAGES
from .catalogue import MODELS as MODELS
from .catalogue import RECOVERIES as RECOVERIES
from .catalogue import TRANSIENT as TRANSIENT
from .catalogue import Fault as Fault
from .catalogue import listing as listing
from .intake import Request
from .replies import Reply
from .tricks import Answer as Answer
from .tricks import Hit as Hit
from .tricks import Pictures as Pictures

OK = "ok"  # in a script: answer normally


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
                self.pool = tuple(spec for spec in specs if spec is not None and spec.fault.target == IMAGES)
            if seed is not None or not hasattr(self, "_rng"):
                self._rng = random.Random(seed)

    def push(self, items: Iterable[FaultSpec | Reply | None]) -> None:
        with self._lock:
            self._script.extend(items)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self.rate = 0.0

    def next(self, target: str = IMAGES) -> FaultSpec | Reply | None:
        """The first scripted item for this kind of request, else (for image requests) a random draw."""
        with self._lock:
            for index, item in enumerate(self._script):
                if _target(item) == target:
                    del self._script[index]
                    return item
            if target != IMAGES:
                return None
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
                    {
                        "name": f.name,
                        "summary": f.summary,
                        "recovery": f.recovery,
                        "default": f.default,
                        "target": f.target,
                    }
                    for f in CATALOGUE.values()
                ],
            }


def _target(item: FaultSpec | Reply | None) -> str:
    return item.fault.target if isinstance(item, FaultSpec) else IMAGES


def inject(
    spec: FaultSpec,
    request: Request,
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
    return spec.fault.act(Hit(spec.value, route, model, answer, request, reply, pictures))
