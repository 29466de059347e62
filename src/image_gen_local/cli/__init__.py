"""The `image-gen` command (and `scripts/gen.py`): parse, run, print. One module per command.

stdout is an API: it carries only `[IMAGE_PATH]...[/IMAGE_PATH]` lines (or one JSON document with
--json / --dry-run). Everything else goes to stderr, and every line passes through the key redactor.
Nothing heavy is imported before a command needs it, so `--help` and usage errors answer at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from ..config import environ
from ..errors import ExitCode, ImageGenError
from .console import PROG, Console, Terminated, prog_name
from .demo import run_demo
from .doctor import run_doctor
from .emulator import run_emulator
from .generate import run_generate, short_usage

COMMANDS = ("generate", "batch", "history", "show", "again", "gallery", "demo", "emulator", "doctor", "mcp")


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    prog = PROG
    if argv is None:  # run as a program: SIGTERM must unwind like Ctrl-C so temporary files are removed
        argv, prog = sys.argv[1:], prog_name(sys.argv[0])
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGTERM, _on_sigterm)
        _fill_closed_std_fds()
    argv = list(argv)
    console = Console(stdout or sys.stdout, stderr or sys.stderr, prog=prog)
    if not argv:
        console.usage(short_usage(prog))
        return ExitCode.USAGE
    command = argv[0] if argv[0] in COMMANDS else "generate"
    try:
        return _dispatch(command, argv, console, stdin or sys.stdin, environ())
    except ImageGenError as exc:
        _report(console, exc)
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


def _fill_closed_std_fds() -> None:
    """Started with stdin, stdout or stderr closed (`>&-`): put /dev/null in the gap, so the next file we
    open (a picture, the manifest) cannot take descriptor 1 or 2 and receive what is written there. Python
    already set sys.stdout (or stderr, stdin) to None, which is how the console knows the stream is gone."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one


def _dispatch(
    command: str, argv: list[str], console: Console, stdin: TextIO | None, env: dict[str, str]
) -> int:
    console.command = command
    rest = argv[1:] if argv[0] in COMMANDS else argv
    if command == "emulator":
        return run_emulator(rest, console)
    if command == "doctor":
        return run_doctor(rest, console, env)
    if command == "demo":
        return run_demo(rest, console, env)
    if command == "batch":
        from .batch import run_batch_command

        return run_batch_command(rest, console, stdin, env)
    if command == "history":
        from .history import run_history

        return run_history(rest, console, env)
    if command == "show":
        from .show import run_show

        return run_show(rest, console, env)
    if command == "gallery":
        from .gallery import run_gallery

        return run_gallery(rest, console, env)
    if command == "again":
        from .again import run_again

        return run_again(rest, console, env)
    if command == "mcp":
        from .mcp import run_mcp

        return run_mcp(rest, console, env)
    return run_generate(rest, console, stdin, env, commands=() if argv[0] == "generate" else COMMANDS)


def _report(console: Console, error: ImageGenError) -> None:
    """One line on stderr; with --json, the promised document on stdout too (unless it was printed)."""
    console.error(error)
    if console.json and not console.results:
        document = {"ok": False, "exit_code": int(error.exit_code), "images": [], "errors": [error.as_json()]}
        with contextlib.suppress(ImageGenError):
            console.document(document)
