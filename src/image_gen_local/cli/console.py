"""Where the command's lines go: results to stdout (an API agents parse), everything else to stderr.

Result lines (stdout) are printed exactly as they are: they name real files, and a short key such as `tmp`
must not turn a true path into a false one (server words are scrubbed where they enter, in the transport).
Every stderr line passes the key redactor again, and control characters and terminal escape sequences are
made visible instead of acted on. A progress bar, while one is shown, gets every line (stdout's too) written
above it, so a result line is never glued to the bar. Messages name the command the user actually ran
(`image-gen`, or `python3 …/scripts/gen.py` in skill mode).

Either stream may be closed (`>&-`, `2>&-`) or turn into a pipe nobody reads. A lost stderr costs only the
messages: nothing changes. A lost stdout means results could not be delivered: one line on stderr and
exit 9, never a traceback or exit 1, and the pictures already saved stay saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..errors import ExitCode, ImageGenError, OutputError
from ..failures import Redactor, printable

PROG = "image-gen"
MAKERS = ("generate", "batch", "again")  # the commands whose results are pictures they saved


def prog_name(argv0: str) -> str:
    """How the user invoked us, for messages that tell them what to run next."""
    name = Path(argv0).name
    if name.endswith(".py") and name != "__main__.py":
        return f"python3 {argv0}"
    return "python3 -m image_gen_local" if name == "__main__.py" else PROG


def marker(path: Path) -> str:
    """The line agents parse: an absolute path between markers, nothing else on the line."""
    return f"[IMAGE_PATH]{path}[/IMAGE_PATH]"


class Terminated(BaseException):
    """SIGTERM, raised in the main thread: it unwinds like Ctrl-C (no `except Exception` can swallow it),
    so every `finally` runs and temporary files are removed."""


class Console:
    """stdout for results, exactly; stderr for the rest, the API key scrubbed and escapes neutralised."""

    def __init__(
        self,
        stdout: TextIO | None,  # None: closed before we started (`>&-`)
        stderr: TextIO | None,
        secret: str | None = None,
        verbose: bool = False,
        prog: str = PROG,
    ) -> None:
        self.stdout = stdout
        self.stderr: TextIO = stderr if stderr is not None else _nowhere()
        self.verbose = verbose
        self.prog = prog
        self.json = False  # the command promised one JSON document on stdout, even for a usage error
        self._redact = Redactor(secret)
        self.write_err: Callable[[str], None] | None = None  # a progress bar's writer, while one is shown
        self.write_out: Callable[[str], None] | None = None  # ... and its writer for stdout lines
        self.results = 0  # lines printed on stdout so far
        self.command = "generate"
        self._lock = threading.Lock()  # batch workers print too

    def hide(self, secret: str | None) -> None:
        """Scrub this key from every stderr line from now on."""
        self._redact = Redactor(secret)

    def _clean(self, text: str) -> str:
        return "\n".join(printable(line) for line in self._redact(text).split("\n"))

    def document(self, data: object) -> None:
        """One JSON document on stdout (--json): UTF-8 as written, but no character a terminal could act
        on (C0 and C1 controls, line separators) is printed raw: those are \\u escapes, as JSON allows."""
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if not _printable_json(text):
            text = "".join(c if c.isprintable() or c in "\n " else json.dumps(c)[1:-1] for c in text)
        self.result(text)

    def result(self, line: str) -> None:
        with self._lock:
            try:
                self.results += 1
                if self.stdout is None:
                    raise BrokenPipeError
                if self.write_out is not None:
                    self.write_out(line)
                else:
                    self.stdout.write(line + "\n")
                    self.stdout.flush()
            except (OSError, ValueError):  # EPIPE, EBADF, a closed file
                # Whoever read our output went away: say so once, and stop writing to the closed pipe.
                _to_nowhere(self.stdout)
                saved = " (the pictures are saved)" if self.command in MAKERS else ""
                raise OutputError(
                    "stdout was closed before every result was printed", f"keep it open and reading{saved}"
                ) from None

    def usage(self, text: str) -> None:
        """Lines for a person at a terminal (short usage), on stderr, without the prefix."""
        with self._lock:
            self._err(text)

    def say(self, message: str) -> None:
        line = self._clean(f"{PROG}: {message}")
        with self._lock:
            if self.write_err is not None:
                try:
                    self.write_err(line)
                except (OSError, ValueError):
                    self.write_err = None
                    self._err(line)
            else:
                self._err(line)

    def _err(self, line: str) -> None:
        """A line on stderr; a stderr nobody reads any more is dropped, it changes nothing else."""
        try:
            self.stderr.write(line + "\n")
            self.stderr.flush()
        except (OSError, ValueError):
            _to_nowhere(self.stderr)
            self.stderr = _nowhere()

    def warn(self, message: str) -> None:
        self.say(f"warning: {message}")

    def note(self, message: str) -> None:
        """Progress that is neither a warning nor an error ("still working …")."""
        self.say(message)

    def info(self, message: str) -> None:
        if self.verbose:
            self.say(message)

    def error(self, error: BaseException | str) -> None:
        """One line; an unreachable server also gets the command that checks it (except from doctor)."""
        hint = ""
        if (
            isinstance(error, ImageGenError)
            and error.exit_code is ExitCode.UNREACHABLE
            and self.command != "doctor"
        ):
            hint = f" (`{self.prog} doctor` checks the server)"
        self.say(f"error: {error}{hint}")


def _nowhere() -> TextIO:
    return open(os.devnull, "w", encoding="utf-8")  # lives as long as the console


def _to_nowhere(stream: TextIO | None) -> None:
    """Point a dead stream's descriptor at /dev/null, so the interpreter's last flush of what is still
    buffered succeeds instead of printing a traceback and exiting with 120."""
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)


def _printable_json(text: str) -> bool:
    return all(line.isprintable() for line in text.split("\n"))
