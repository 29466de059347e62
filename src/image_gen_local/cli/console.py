"""Where the command's lines go: results to stdout (an API agents parse), everything else to stderr.

Result lines (stdout) are printed exactly as they are: they name real files, and a short key such as `tmp`
must not turn a true path into a false one (server words are scrubbed where they enter, in the transport).
Every stderr line passes the key redactor again, and control characters and terminal escape sequences are
made visible instead of acted on; a progress bar, while one is shown, gets stderr lines written above it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..errors import OutputError
from ..failures import Redactor, printable

PROG = "image-gen"


def marker(path: Path) -> str:
    """The line agents parse: an absolute path between markers, nothing else on the line."""
    return f"[IMAGE_PATH]{path}[/IMAGE_PATH]"


class Console:
    """stdout for results, exactly; stderr for the rest, the API key scrubbed and escapes neutralised."""

    def __init__(
        self, stdout: TextIO, stderr: TextIO, secret: str | None = None, verbose: bool = False
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.verbose = verbose
        self._redact = Redactor(secret)
        self.write_err: Callable[[str], None] | None = None  # a progress bar's writer, while one is shown
        self._lock = threading.Lock()  # batch workers print too

    def hide(self, secret: str | None) -> None:
        """Scrub this key from every stderr line from now on."""
        self._redact = Redactor(secret)

    def _clean(self, text: str) -> str:
        return "\n".join(printable(line) for line in self._redact(text).split("\n"))

    def result(self, line: str) -> None:
        with self._lock:
            try:
                self.stdout.write(line + "\n")
                self.stdout.flush()
            except BrokenPipeError:
                # Whoever read our output went away: say so once, and stop writing to the closed pipe.
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), self.stdout.fileno())
                raise OutputError(
                    "stdout was closed before every result was printed", "keep reading it"
                ) from None

    def say(self, message: str) -> None:
        line = self._clean(f"{PROG}: {message}")
        with self._lock:
            if self.write_err is not None:
                self.write_err(line)
            else:
                self.stderr.write(line + "\n")
                self.stderr.flush()

    def warn(self, message: str) -> None:
        self.say(f"warning: {message}")

    def info(self, message: str) -> None:
        if self.verbose:
            self.say(message)

    def error(self, error: BaseException | str) -> None:
        self.say(f"error: {error}")
