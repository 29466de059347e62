"""A heartbeat on stderr while we wait: agent runners kill processes that stay silent for too long."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

HEARTBEAT_SECONDS = 15.0


class Heartbeat:
    """Says "still working" every `interval` seconds with the current status, until closed."""

    def __init__(self, say: Callable[[str], None], interval: float = HEARTBEAT_SECONDS) -> None:
        self.say = say
        self.interval = interval
        self.status = "starting"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def __enter__(self) -> Heartbeat:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="image-gen-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            elapsed = time.monotonic() - self._started
            self.say(f"still working ({elapsed:.0f} s): {self.status}")
