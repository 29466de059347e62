"""A heartbeat on stderr while we wait: agent runners kill processes that stay silent for too long."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

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

    def set(self, status: str) -> None:
        self.status = status

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            elapsed = time.monotonic() - self._started
            self.say(f"still working ({elapsed:.0f} s): {self.status}")


class BatchProgress:
    """Counts, rate and ETA on stderr: a live bar on a terminal (tqdm), a plain line every few seconds
    otherwise (agent runners and log files), so a long batch is never silent."""

    def __init__(
        self,
        total: int,
        say: Callable[[str], None],
        stream: Any,
        tty: bool,
        interval: float = 5.0,
        out: Any = None,
    ) -> None:
        self.total = total
        self.say = say
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._beat: Heartbeat | None = None
        self.writer: Callable[[str], None] | None = None  # how to print a line without breaking the bar
        self.out_writer: Callable[[str], None] | None = None  # ... on stdout (result lines), likewise
        if tty and terminal_columns(stream) != 0:  # a 0-column terminal gets the plain lines instead
            from tqdm import tqdm  # only for a person watching a terminal

            self._bar = tqdm(total=total, unit="pic", file=stream, dynamic_ncols=True, leave=False)
            self.writer = lambda line: tqdm.write(line, file=stream)
            if out is not None:
                self.out_writer = lambda line: _write_flushed(tqdm, line, out)
        elif interval > 0:
            self._beat = Heartbeat(lambda _line: self.say(self.line()), interval)
            self._beat.__enter__()

    def picture(self, ok: bool, count: int = 1) -> None:
        with self._lock:
            self.done += count
            self.failed += 0 if ok else count
        if self._bar is not None:
            self._bar.update(count)
            if self.failed:
                self._bar.set_postfix(failed=self.failed)

    def line(self) -> str:
        with self._lock:
            done, failed = self.done, self.failed
        elapsed = time.monotonic() - self.started
        rate = done / elapsed * 60 if elapsed > 0 else 0.0
        left = self.total - done
        eta = f", ETA {_duration(left / rate * 60)}" if rate > 0 and left > 0 else ""
        failures = f", {failed} failed" if failed else ""
        return f"batch: {done}/{self.total} pictures{failures}, {rate:.1f}/min{eta}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._beat is not None:
            self._beat.__exit__(None, None, None)


def _write_flushed(tqdm: Any, line: str, out: Any) -> None:
    """A result line above the bar, flushed at once: an agent may be reading stdout through a pipe."""
    tqdm.write(line, file=out)
    out.flush()


def terminal_columns(stream: Any) -> int | None:
    """The width of the terminal behind `stream` (0 for a pseudo-terminal that reports none), or None
    when the stream has no terminal to ask."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
