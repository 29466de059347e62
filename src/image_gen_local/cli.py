"""The `image-gen` command (and `scripts/gen.py`): parse, run, print.

stdout is an API: it carries only `[IMAGE_PATH]...[/IMAGE_PATH]` lines (or one JSON document with
--json / --dry-run). Everything else goes to stderr, and every line passes through the key redactor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__, geometry
from .config import Settings, cache_dir, environ, resolve
from .errors import ExitCode, ImageGenError, OutputError, UsageError

PROG = "image-gen"
COUNT_CONCURRENCY = 2  # pictures at once for -n, like a batch's default
COMMANDS = ("generate", "batch", "demo", "emulator", "doctor")


def marker(path: Path) -> str:
    """The line agents parse: an absolute path between markers, nothing else on the line."""
    return f"[IMAGE_PATH]{path}[/IMAGE_PATH]"


class Console:
    """stdout for results, stderr for the rest; the API key is scrubbed from both."""

    def __init__(
        self, stdout: TextIO, stderr: TextIO, secret: str | None = None, verbose: bool = False
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.secret = secret
        self.verbose = verbose
        self.write_err: Callable[[str], None] | None = None  # a progress bar's writer, while one is shown
        self._lock = threading.Lock()  # batch workers print too

    def _clean(self, text: str) -> str:
        return text.replace(self.secret, "***") if self.secret else text

    def result(self, line: str) -> None:
        with self._lock:
            try:
                self.stdout.write(self._clean(line) + "\n")
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line with the fix, and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


def _common(parser: argparse.ArgumentParser) -> None:
    """Connection options shared by generate, batch and doctor."""
    parser.add_argument("--model", help="image model (env IMAGE_GEN_MODEL; default gemini-3-pro-image)")
    parser.add_argument("--base-url", help="server URL, with or without /v1 (env IMAGE_GEN_BASE_URL)")
    parser.add_argument("--api-key", help="proxy API key if it needs one (env IMAGE_GEN_API_KEY)")
    parser.add_argument("--output-dir", help="folder for pictures (env IMAGE_GEN_OUTPUT_DIR)")
    parser.add_argument("--route", help="server API: auto, images or chat (default auto)")
    parser.add_argument(
        "--timeout",
        help="deadline in seconds, retries included (600): the whole command, or each picture of a batch",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="details on stderr")


def picture_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """What to draw: the generate options, which in a batch are defaults for every job."""
    each = " (default for every job)" if batch else ""
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH",
        help=f"input picture (repeatable, at most 14; the first is the main one){each}",
    )
    parser.add_argument(
        "--size", metavar="WxH", help=f"exact pixel size; overrides --resolution/--aspect-ratio{each}"
    )
    parser.add_argument(
        "--resolution", default=None if batch else "1k", metavar="1k|2k|4k", help=f"tier (default 1k){each}"
    )
    parser.add_argument(
        "--aspect-ratio",
        metavar="W:H",
        help=f"e.g. 16:9 or 2.39:1 (default 1:1; with --image, the main input's ratio){each}",
    )
    parser.add_argument(
        "-n",
        "--count",
        default=None if batch else "1",
        metavar="N",
        help=f"pictures per prompt (default 1){each}",
    )


def generate_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Generate or transform pictures through a local OpenAI-compatible image server.",
        epilog="Other commands: image-gen batch | demo | emulator | doctor (each has --help). "
        "Exit codes: 0 ok, 1 unexpected, 2 usage, 3 unreachable, 4 key, 5 quota, 6 no picture, "
        "7 bad input picture, 8 deadline, 9 output folder.",
    )
    parser.add_argument("prompt", help="what to draw, in English; - reads it from stdin")
    picture_options(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="exact file for a single picture")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of marker lines")
    parser.add_argument("--dry-run", action="store_true", help="print the request(s); send nothing")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser)
    return parser


def settings_from(args: argparse.Namespace, env: dict[str, str]) -> Settings:
    flags = {
        "base_url": args.base_url,
        "api_key": args.api_key,
        "model": args.model,
        "output_dir": args.output_dir,
        "route": args.route,
        "timeout": args.timeout,
    }
    return resolve(flags, env)


def _request_from(args: argparse.Namespace, stdin: TextIO) -> Any:
    from .engine import ImageRequest

    prompt = stdin.read() if args.prompt == "-" else args.prompt
    try:
        size = geometry.parse_size(args.size) if args.size else None
        tier = geometry.parse_tier(args.resolution)
        ratio = geometry.parse_ratio(args.aspect_ratio) if args.aspect_ratio else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        count = int(args.count)
    except ValueError:
        raise UsageError(f"--count {args.count!r} is not a whole number", "use e.g. -n 3") from None
    return ImageRequest(
        prompt=prompt,
        images=tuple(Path(p) for p in args.image),
        size=size,
        resolution=tier,
        aspect_ratio=ratio,
        count=count,
        output=Path(args.output) if args.output else None,
    )


def run_generate(argv: Sequence[str], console: Console, stdin: TextIO, env: dict[str, str]) -> int:
    args = generate_parser().parse_args(argv)
    console.verbose = args.verbose
    settings = settings_from(args, env)
    console.secret = settings.api_key
    from .engine import Generator, prepare
    from .servers import ServerCache
    from .throttle import Throttle

    request = _request_from(args, stdin)
    prepared = prepare(request, settings)
    generator = Generator(
        settings,
        warn=console.warn,
        info=console.info,
        cache=ServerCache(cache_dir(env)),
        throttle=Throttle(min(COUNT_CONCURRENCY, request.count)),  # -n: the batch engine's default
    )
    if args.dry_run:
        calls = generator.dry_run(prepared)
        console.result(json.dumps({"dry_run": True, "requests": calls}, indent=2, ensure_ascii=False))
        return ExitCode.OK

    def on_saved(saved: Any) -> None:
        if not args.json:
            console.result(marker(saved.path))

    try:
        result = generator.run(prepared, on_saved)
    finally:
        generator.close()
    for error in result.errors:
        console.error(error)
    if args.json:
        document = {
            "ok": not result.errors,
            "exit_code": int(result.exit_code),
            "images": [saved.as_json() for saved in result.images],
            "errors": [{"exit_code": int(e.exit_code), "message": str(e)} for e in result.errors],
            "warnings": [w for saved in result.images for w in saved.warnings],
        }
        console.result(json.dumps(document, indent=2, ensure_ascii=False))
    return result.exit_code


def run_emulator(argv: Sequence[str], console: Console) -> int:
    parser = _Parser(
        prog=f"{PROG} emulator",
        description="Serve the offline emulator: an Antigravity-like API that draws SYNTHETIC pictures.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8045)
    parser.add_argument(
        "--api-key", help="require this key (default: none, like a default Antigravity install)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each picture")
    parser.add_argument("--format", default="png", choices=("png", "jpeg", "webp"), help="picture format")
    parser.add_argument("--models", help="comma-separated image models that have quota")
    parser.add_argument(
        "--faults",
        default="",
        metavar="LIST",
        help="faults for the next image requests, in order, e.g. 429-retry-delay,ok,reset-during",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="then, the chance (0-1) of a random fault per image request",
    )
    parser.add_argument(
        "--fault-pool",
        default="transient",
        metavar="POOL",
        help="faults drawn at random: transient (default), all, or a list of names",
    )
    parser.add_argument("--seed", type=int, help="random seed for repeatable faults")
    parser.add_argument("--list-faults", action="store_true", help="list the faults and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request on stderr")
    args = parser.parse_args(argv)
    from .emulator import EmulatorConfig, serve
    from .faults import CATALOGUE

    if args.list_faults:
        for fault in CATALOGUE.values():
            default = f" (default {fault.default:g})" if fault.default is not None else ""
            console.result(f"{fault.name:16} {fault.recovery:12} {fault.summary}{default}")
        return ExitCode.OK
    try:
        config = EmulatorConfig(
            api_key=args.api_key,
            latency=args.latency,
            image_format=args.format,
            verbose=args.verbose,
            faults=args.faults,
            fault_rate=args.fault_rate,
            fault_pool=args.fault_pool,
            seed=args.seed,
        )
        if args.models:
            config.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        from .emulator import Emulator

        Emulator(config)  # validates the fault options before binding the port
    except ValueError as exc:
        raise UsageError(str(exc), "see `image-gen emulator --list-faults`") from None
    try:
        serve(config, args.host, args.port)
    except (OSError, OverflowError) as exc:
        raise ImageGenError(
            f"cannot listen on {args.host}:{args.port} ({getattr(exc, 'strerror', None) or exc})",
            "is something (Antigravity?) already there? pick another --port",
            ExitCode.USAGE,
        ) from None
    return ExitCode.OK


def run_doctor(argv: Sequence[str], console: Console, env: dict[str, str]) -> int:
    parser = _Parser(prog=f"{PROG} doctor", description="Check that generation can work; one line per check.")
    _common(parser)
    args = parser.parse_args(argv)
    console.verbose = args.verbose
    settings = settings_from(args, env)
    console.secret = settings.api_key
    from .doctor import run_checks

    return run_checks(settings, console.result)


def run_demo(argv: Sequence[str], console: Console, env: dict[str, str]) -> int:
    parser = _Parser(
        prog=f"{PROG} demo",
        description="Start the bundled emulator and make two SYNTHETIC pictures through the client.",
    )
    parser.add_argument("--output-dir", help="folder for the demo pictures (default: the configured one)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    console.verbose = args.verbose
    settings = resolve({"output_dir": args.output_dir}, env)
    from .demo import run_demo as demo

    return demo(settings, console)


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
            from .batch_cli import run_batch_command

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
