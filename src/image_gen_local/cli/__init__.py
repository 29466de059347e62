"""The `image-gen` command (and `scripts/gen.py`): parse, run, print. One module per command.

stdout is an API: it carries only `[IMAGE_PATH]...[/IMAGE_PATH]` lines (or one JSON document with
--json / --dry-run). Everything else goes to stderr, and every line passes through the key redactor.
Nothing heavy is imported before a command needs it, so `--help` and usage errors answer at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from ..config import environ
from ..errors import ExitCode, ImageGenError
from .console import Console
from .demo import run_demo
from .doctor import run_doctor
from .emulator import run_emulator
from .generate import run_generate

COMMANDS = ("generate", "batch", "demo", "emulator", "doctor")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread: it unwinds like Ctrl-C (no `except Exception` can swallow it),
    so every `finally` runs and temporary files are removed."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    if argv is None:  # run as a program: SIGTERM must unwind like Ctrl-C so temporary files are removed
        argv = sys.argv[1:]
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGTERM, _on_sigterm)
    argv = list(argv)
    console = Console(stdout or sys.stdout, stderr or sys.stderr)
    env = environ()
    try:
        command = argv[0] if argv and argv[0] in COMMANDS else "generate"
        rest = argv[1:] if argv and argv[0] in COMMANDS else argv
        if command == "emulator":
            return run_emulator(rest, console)
        if command == "doctor":
            return run_doctor(rest, console, env)
        if command == "demo":
            return run_demo(rest, console, env)
        if command == "batch":
            from .batch import run_batch_command

            return run_batch_command(rest, console, stdin or sys.stdin, env)
        return run_generate(rest, console, stdin or sys.stdin, env)
    except ImageGenError as exc:
        console.error(exc)
        return exc.exit_code
    except (KeyboardInterrupt, Terminated) as exc:
        console.error("interrupted; nothing partial was left behind")
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # a bug: still one line, with what to do
        console.error(f"unexpected {type(exc).__name__}: {exc}; please report it (rerun with -v for details)")
        if console.verbose:
            import traceback

            console.say(traceback.format_exc().rstrip())
        return ExitCode.UNEXPECTED
