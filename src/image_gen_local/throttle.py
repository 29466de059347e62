"""One gate for every request of a run, so the server is kept exactly as busy as it allows.

Workers ask the gate before each request and give their slot back with how the request ended. It admits at
most the limiter's current limit at once (learned while the run goes: limiter.py decides, this module only
keeps the count, the clock and the threads), never two closer than the `--rate` spacing, and none while a
pause the server asked for runs (a long stated wait holds back every new request).

Several runs can share one gate (`branch`): the MCP server's tool calls all count against the same slots,
spacing, pauses and learned limit, yet a client cancelling one call stops that call alone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import limiter
from .limiter import Answer, Verdict


class Cancelled(Exception):
    """The run is stopping: no new request may start."""


@dataclass(frozen=True)
class Slot:
    """One admitted request: how many of ours were in flight with it, since when, and of which kind."""

    sent_with: int
    started: float
    key: str = ""


class _Gate:
    """The state every branch of a throttle shares: slots, spacing, pauses, the learned limit."""

    def __init__(
        self,
        ceiling: int,
        per_minute: float | None,
        clock: Callable[[], float],
        report: Callable[[str], None] | None,
    ) -> None:
        self.ceiling = ceiling
        self.state = limiter.start(ceiling)  # raises ValueError below 1
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock = clock
        self.report = report  # told (outside the lock) each time the limit changes, and why
        self.active = 0
        self.peak = 0  # the most in flight that answered healthy
        self.paused_until = 0.0
        self.pauses = 0  # distinct waits the server asked of everyone
        self.decreases = 0  # times the limit went down
        self.newest = 0.0  # when the latest request was admitted
        self.under_way = 0  # waiters whose deadline runs (retries, -n): they go before first requests
        self.pending: Counter[int] = Counter()  # requests in flight, by how many were in flight when sent
        self.next_start = 0.0
        self.cond = threading.Condition()


class Throttle:
    def __init__(
        self,
        ceiling: int = 1,
        per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[str], None] | None = None,
        *,
        gate: _Gate | None = None,
    ) -> None:
        self._gate = gate or _Gate(ceiling, per_minute, clock, report)
        self._cond = self._gate.cond
        self._cancelled = False
        self._interrupted = False
        self._saving = 0  # pictures of this run being written to disk right now

    def branch(self) -> Throttle:
        """A gate for one more run that shares this one's slots, spacing, pauses and learned limit, but is
        cancelled and interrupted on its own."""
        return Throttle(gate=self._gate)

    # The shared state, read-only from outside.
    @property
    def ceiling(self) -> int:
        return self._gate.ceiling

    @property
    def state(self) -> limiter.Limit:
        return self._gate.state

    @property
    def limit(self) -> int:
        return self._gate.state.value

    @property
    def interval(self) -> float:
        return self._gate.interval

    @property
    def active(self) -> int:
        return self._gate.active

    @property
    def paused_until(self) -> float:
        return self._gate.paused_until

    @property
    def pauses(self) -> int:
        return self._gate.pauses

    @property
    def decreases(self) -> int:
        return self._gate.decreases

    def acquire(self, deadline: float | None, key: str = "") -> Slot | None:
        """Wait for a slot; None if `deadline` (on this clock) comes first. A picture's first request, whose
        --timeout starts only once it has a slot, passes None: it waits as long as it takes, behind every
        picture already under way (those retry within their own deadlines)."""
        gate = self._gate
        said = ""
        with self._cond:
            gate.under_way += deadline is not None
            try:
                while True:
                    if self._cancelled:
                        raise Cancelled
                    now = gate.clock()
                    grown = limiter.blind_step(gate.state, gate.active, now - gate.newest)
                    said = self._change(grown) or said
                    wait = max(gate.paused_until - now, gate.next_start - now, 0.0)
                    slot = self._admit(now, key) if wait <= 0 and self._my_turn(deadline) else None
                    if slot is not None or (deadline is not None and now >= deadline):
                        break
                    blind = limiter.blind_wait(gate.state, gate.active, now - gate.newest)
                    nap = wait if wait > 0 else 1.0 if blind is None else max(blind, 0.001)
                    self._cond.wait(timeout=nap if deadline is None else min(nap, deadline - now))
            finally:
                if deadline is not None:
                    gate.under_way -= 1
                    self._cond.notify_all()  # first requests may go, if it was the last under way
        self._tell(said)
        return slot

    def _my_turn(self, deadline: float | None) -> bool:
        """A slot is free, and no picture already under way waits for it (if this one starts only now)."""
        gate = self._gate
        return gate.active < gate.state.value and (deadline is not None or not gate.under_way)

    def _admit(self, now: float, key: str) -> Slot:
        gate = self._gate
        gate.active += 1
        gate.pending[gate.active] += 1
        gate.newest = now
        gate.next_start = now + gate.interval
        return Slot(gate.active, now, key)

    def release(
        self,
        slot: Slot,
        verdict: Verdict,
        *,
        crowded: bool = False,
        wait: float = 0.0,
        seconds: float | None = None,
    ) -> None:
        """The request of `slot` ended: `crowded` when it was refused for too many in flight; `wait` is how
        long an uncrowded overload lasts (one step down per such event); `seconds` how long the server
        took (default: since the slot was taken)."""
        gate = self._gate
        with self._cond:
            now = gate.clock()
            gate.active -= 1
            gate.pending[slot.sent_with] -= 1
            if verdict is Verdict.HEALTHY:
                gate.peak = max(gate.peak, slot.sent_with)
            load = max(slot.sent_with, gate.active + 1) if crowded else slot.sent_with
            took = now - slot.started if seconds is None else seconds
            answer = Answer(verdict, load, took, slot.key, crowded, wait)
            said = self._change(limiter.answered(gate.state, answer, now, gate.pending))
            self._cond.notify_all()
        self._tell(said)

    def busy_wait(self) -> float | None:
        """How long every request of ours waits after a refusal with nothing else of ours in flight, on a
        server known to refuse at once (it is busy with others' pictures, and one of them ends within about
        the time our fastest took); None when nothing is known, and the retry policy's backoff applies."""
        with self._cond:
            state = self._gate.state
            if not state.refuses or not state.base:
                return None
            return min(state.base.values())

    def load(self, slot: Slot) -> int:
        """Ours in flight with `slot`'s request (itself included) when it was sent or now, whichever is
        more: a refusal while others are still running means too many at once, whatever the order."""
        with self._cond:
            return max(slot.sent_with, self._gate.active)

    def _change(self, new: limiter.Limit) -> str:
        """Take the limiter's new state; what to say about it, if the limit moved (call under the lock)."""
        gate = self._gate
        old, gate.state = gate.state, new
        if new.value == old.value:
            return ""
        gate.decreases += new.value < old.value
        if new.value > old.value:
            self._cond.notify_all()
        return f"concurrency {old.value} -> {new.value}: {new.why}"

    def _tell(self, said: str) -> None:
        if said and self._gate.report is not None:
            self._gate.report(said)

    def pause(self, seconds: float, *, stated: bool = True) -> None:
        """No new request starts before `seconds` are over: the server stated a long wait (`stated`, counted
        for the summary), or it refused our only request in flight (busy with others, or out of quota)."""
        gate = self._gate
        with self._cond:
            now = gate.clock()
            if stated and now >= gate.paused_until:
                gate.pauses += 1
            gate.paused_until = max(gate.paused_until, now + seconds)
            self._cond.notify_all()

    def found(self) -> str:
        """What the run learned of the server's capacity, in words, for the summary."""
        with self._cond:
            return limiter.describe(self._gate.state, self._gate.peak)

    def cancel(self) -> None:
        """Refuse every request from now on (a failure ended the run); waiting workers give up at once."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    @property
    def interrupted(self) -> bool:
        """The user (Ctrl-C, SIGTERM) or an MCP client (a cancelled call) stopped the run."""
        with self._cond:
            return self._interrupted

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: like cancel, and no new file may be started either (see `saving`)."""
        with self._cond:
            self._interrupted = True
        self.cancel()

    def drained(self, timeout: float) -> bool:
        """After `interrupt`: wait up to `timeout` seconds for the pictures being written to be done."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._saving and (left := end - time.monotonic()) > 0:
                self._cond.wait(timeout=left)
            return not self._saving

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """Around writing a picture: refused (Cancelled) once the run was interrupted, and waited for by
        `drained`, so a stopped run never leaves a file half-written (a picture already received is still
        saved when a failure ends the run, but not when the user stops it)."""
        with self._cond:
            if self._interrupted:
                raise Cancelled
            self._saving += 1
        try:
            yield
        finally:
            with self._cond:
                self._saving -= 1
                self._cond.notify_all()

    def reopen(self) -> None:
        """A new run on the same generator starts with the gate open again."""
        with self._cond:
            self._cancelled = self._interrupted = False

    def sleep(self, seconds: float) -> None:
        """Wait out a retry backoff, but give up at once if the run stops meanwhile."""
        end = time.monotonic() + seconds
        with self._cond:
            while not self._cancelled and (left := end - time.monotonic()) > 0:
                self._cond.wait(timeout=left)
            if self._cancelled:
                raise Cancelled
