"""How many image requests the emulated server works on at once, and what it does with the rest.

Antigravity Tools makes as many pictures at once as its accounts allow and answers every request beyond
that at once: 429 "All accounts exhausted", or 503 `MODEL_CAPACITY_EXHAUSTED` when Google has no capacity
for the model. Other servers accept everything and make a few at a time, so answers just take longer.
`--capacity K` emulates the first, `--queue` the second, and `/emulator/capacity` changes K while the
server runs, so that a client's adaptive concurrency can be tried, tested and measured offline.
"""

from __future__ import annotations

import threading
from typing import Any

from ..upstream import ALL_EXHAUSTED_BODY, CAPACITY_EXHAUSTED_BODY
from .intake import parse_json_body
from .replies import Reply, empty, json_reply, plain

REFUSALS = {429: ALL_EXHAUSTED_BODY, 503: CAPACITY_EXHAUSTED_BODY}  # the real server's words, one place
CAPACITY_PATH = "/emulator/capacity"


class Gate:
    """At most `capacity` image requests at once (None: no limit); the rest refused at once, or queued in
    order of arrival with `queue`. Thread-safe; the capacity can change at any time."""

    def __init__(self, capacity: int | None = None, queue: bool = False, status: int = 429) -> None:
        self._cond = threading.Condition()
        self.capacity: int | None = None
        self.queue = False
        self.status = 429
        self.active = self.waiting = self.peak = self.served = self.refused = 0
        self._tickets = self._turn = 0  # first come, first served in queue mode
        self._closed = False
        self.configure(capacity=capacity, queue=queue, status=status)

    def configure(self, **changes: Any) -> None:
        """Change `capacity` (a whole number >= 1, or None), `queue` (bool), `status` (429 or 503); raises
        ValueError for anything else."""
        capacity = changes.get("capacity", self.capacity)
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)):
            raise ValueError(f"capacity must be a whole number or null, not {capacity!r}")
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1 (null: no limit), not {capacity}")
        queue = changes.get("queue", self.queue)
        if not isinstance(queue, bool):
            raise ValueError(f"queue must be true or false, not {queue!r}")
        status = changes.get("status", self.status)
        if status not in REFUSALS:
            raise ValueError(f"status must be one of {', '.join(map(str, REFUSALS))}, not {status!r}")
        with self._cond:
            self.capacity, self.queue, self.status = capacity, queue, status
            self._cond.notify_all()

    def _room(self) -> bool:
        return self.capacity is None or self.active < self.capacity

    def enter(self) -> Reply | None:
        """None: admitted, call `leave` once answered. Otherwise the refusal to send, at once. In queue
        mode this waits its turn (stopping the emulator ends the wait with a refusal)."""
        with self._cond:
            if not self._room() and not self.queue:
                self.refused += 1
                return plain(self.status, REFUSALS[self.status])
            ticket, self._tickets = self._tickets, self._tickets + 1
            self.waiting += 1
            while ticket != self._turn or not self._room():
                if self._closed or (not self.queue and ticket == self._turn):  # stopped, or no queue now
                    self._turn += 1
                    self.waiting -= 1
                    self.refused += 1
                    self._cond.notify_all()
                    return plain(self.status, REFUSALS[self.status])
                self._cond.wait(timeout=1.0)
            self._turn += 1
            self.waiting -= 1
            self.active += 1
            self.peak = max(self.peak, self.active)
            self._cond.notify_all()
            return None

    def leave(self) -> None:
        with self._cond:
            self.active -= 1
            self.served += 1
            self._cond.notify_all()

    def close(self) -> None:
        """The emulator stops: every request still waiting is refused."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def describe(self) -> dict[str, Any]:
        with self._cond:
            return {
                "capacity": self.capacity,
                "queue": self.queue,
                "status": self.status,
                "in_flight": self.active,
                "waiting": self.waiting,
                "peak": self.peak,
                "served": self.served,
                "refused": self.refused,
            }

    def reset_counts(self) -> None:
        with self._cond:
            self.peak, self.served, self.refused = self.active, 0, 0


def control(gate: Gate, method: str, content_type: str | None, raw: bytes) -> Reply:
    """GET /emulator/capacity shows the gate; POST {"capacity": 2, "queue": false, "status": 503,
    "reset": true} changes it (any subset; `reset` zeroes the counts)."""
    if method == "POST":
        body, error = parse_json_body(content_type, raw)
        if error is not None:
            return error
        if not isinstance(body, dict) or not set(body) <= {"capacity", "queue", "status", "reset"}:
            return plain(400, "expected a JSON object with capacity, queue, status or reset")
        try:
            gate.configure(**{key: value for key, value in body.items() if key != "reset"})
        except ValueError as exc:
            return plain(400, str(exc))
        if body.get("reset"):
            gate.reset_counts()
    elif method != "GET":
        return empty(405)
    return json_reply(200, gate.describe())
