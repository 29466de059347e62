"""One gate for every request of a run, so the server is kept exactly as busy as it allows.

Workers ask the gate before each request. It admits at most `limit` at once, never two closer than the
`--rate` spacing, and none while a pause the server asked for runs. An overload answer (429, 503
capacity) lowers the limit by one, once per overload event (an event lasts as long as the wait it asked
for), so a storm of them walks it down to one request at a time; every success then raises it by one again,
back up to the concurrency asked for. A long wait the server states holds back every new request.

Several runs can share one gate (`branch`): the MCP server's tool calls all count against the same slots,
spacing and pauses, yet a client cancelling one call stops that call alone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator


class Cancelled(Exception):
    """The run is stopping: no new request may start."""


class _Gate:
    """The state every branch of a throttle shares: slots, spacing, pauses."""

    def __init__(self, concurrency: int, per_minute: float | None, clock: Callable[[], float]) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.limit = concurrency
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock = clock
        self.active = 0
        self.paused_until = 0.0
        self.pauses = 0  # distinct waits the server asked of everyone
        self.decreases = 0  # overload events that lowered the limit
        self.calm_until = 0.0  # until then, further overload answers belong to the same event
        self.next_start = 0.0
        self.cond = threading.Condition()


class Throttle:
    def __init__(
        self,
        concurrency: int = 1,
        per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        gate: _Gate | None = None,
    ) -> None:
        self._gate = gate or _Gate(concurrency, per_minute, clock)
        self._cond = self._gate.cond
        self._cancelled = False
        self._interrupted = False
        self._saving = 0  # pictures of this run being written to disk right now

    def branch(self) -> Throttle:
        """A gate for one more run that shares this one's slots, spacing and pauses, but is cancelled and
        interrupted on its own."""
        return Throttle(gate=self._gate)

    # The shared state, read-only from outside.
    @property
    def concurrency(self) -> int:
        return self._gate.concurrency

    @property
    def limit(self) -> int:
        return self._gate.limit

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

    def acquire(self, deadline: float) -> bool:
        """Wait for a slot; False if `deadline` (on this clock) comes first."""
        gate = self._gate
        with self._cond:
            while True:
                if self._cancelled:
                    raise Cancelled
                now = gate.clock()
                wait = max(gate.paused_until - now, gate.next_start - now, 0.0)
                if wait <= 0 and gate.active < gate.limit:
                    gate.active += 1
                    gate.next_start = now + gate.interval
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(timeout=min(wait if wait > 0 else 1.0, deadline - now))

    def release(self, ok: bool) -> None:
        """A request's answer arrived; `ok` when the server answered normally (the limit grows back)."""
        gate = self._gate
        with self._cond:
            gate.active -= 1
            if ok and gate.limit < gate.concurrency and gate.clock() >= gate.calm_until:
                gate.limit += 1
            self._cond.notify_all()

    def cancel(self) -> None:
        """Refuse every request from now on (a failure ended the run); waiting workers give up at once."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

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

    def slow_down(self, seconds: float, stated: bool = False) -> None:
        """The server is overloaded: one request fewer at once (once per event, an event lasting
        `seconds`); with `stated`, no new request starts before the wait ends."""
        gate = self._gate
        with self._cond:
            now = gate.clock()
            if now >= gate.calm_until:
                gate.limit = max(1, gate.limit - 1)
                gate.decreases += 1
            gate.calm_until = max(gate.calm_until, now + seconds)
            if stated:
                if now >= gate.paused_until:
                    gate.pauses += 1
                gate.paused_until = max(gate.paused_until, now + seconds)
            self._cond.notify_all()
