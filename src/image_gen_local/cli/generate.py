"""`image-gen PROMPT` (≡ `image-gen generate PROMPT`): one prompt, one or `-n` pictures.

Prints one marker line per saved picture, or one JSON document with --json / --dry-run.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..config import cache_dir
from ..errors import ExitCode, UsageError
from ..version import __version__
from .args import (
    Parser,
    connection_options,
    defaults_epilog,
    history_option,
    picture_options,
    settings_from,
)
from .console import Console, marker

if TYPE_CHECKING:
    from ..config import Settings
    from ..request import ImageRequest

STDIN_SLACK = 4096  # characters of white space around a prompt from stdin, beyond the prompt limit
# Words that are, or are about to be, commands: a one-word prompt close to one is a typo, not a wish.
RESERVED = ("help", "history", "gallery", "show", "again", "mcp", "version", "config", "status")
EXAMPLES = (
    "'a cute cat on a windowsill, cartoon style'",
    "'snowy mountains at sunrise, photorealistic' --aspect-ratio 16:9 --resolution 4k",
    "'the same person as an anime character, Japanese anime style' --image photo.jpg",
)


def generate_parser(prog: str) -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Generate or transform pictures through a local OpenAI-compatible image server.",
        epilog=f"Other commands: {prog} batch | history | show | again | gallery | demo | emulator | doctor "
        "(each has --help). "
        + defaults_epilog()
        + " Exit codes: 0 ok, 1 unexpected, 2 usage, 3 unreachable, 4 key, 5 quota, 6 no picture, "
        "7 bad input picture, 8 deadline, 9 output folder, manifest or stdout.",
    )
    parser.add_argument("prompt", help="what to draw, in English; - reads it from stdin")
    picture_options(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="exact file for a single picture")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of marker lines")
    parser.add_argument("--dry-run", action="store_true", help="print the request(s); send nothing")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    connection_options(parser)
    history_option(parser)
    return parser


def read_prompt(stdin: TextIO | None) -> str:
    """The prompt from stdin, read only up to what a prompt may be: a 10 GB pipe is refused, not swallowed."""
    from ..request import MAX_PROMPT_CHARS

    fix = "pipe the prompt in as UTF-8 text, or give it as an argument"
    if stdin is None:
        raise UsageError("stdin is closed: there is no prompt to read", fix)
    limit = MAX_PROMPT_CHARS + STDIN_SLACK  # room for blank lines around it
    try:
        text = stdin.read(limit + 1)
    except UnicodeDecodeError:
        raise UsageError("the prompt on stdin is not UTF-8 text", fix) from None
    except OSError as exc:
        raise UsageError(f"cannot read the prompt from stdin ({exc.strerror or exc})", fix) from None
    if len(text) > limit:
        raise UsageError(f"the prompt on stdin is longer than {MAX_PROMPT_CHARS} characters", "shorten it")
    return text


def _request_from(args: argparse.Namespace, stdin: TextIO | None) -> ImageRequest:
    from ..request import usage_request

    prompt = read_prompt(stdin) if args.prompt == "-" else args.prompt
    return usage_request(
        prompt,
        images=args.image,
        size=args.size,
        resolution=args.resolution,
        aspect_ratio=args.aspect_ratio,
        count=args.count,
        output=args.output,
    )


def short_usage(prog: str) -> str:
    """What `image-gen` with no arguments shows: how to call it, three examples, where help is."""
    lines = [
        f"usage: {prog} PROMPT [options]",
        f"   or: {prog} batch|history|show|again|gallery|demo|emulator|doctor ...",
        "examples:",
    ]
    lines += [f"  {prog} {example}" for example in EXAMPLES]
    lines.append(f"try `{prog} demo` without a server; `{prog} --help` lists every option and default")
    return "\n".join(lines)


def refuse_command_typo(prompt: str, prog: str, commands: Sequence[str]) -> None:
    """A one-word prompt equal or close to a command name is a mistyped command: refuse it, for free."""
    word = prompt.strip()
    if not word or any(ch.isspace() for ch in word):
        return
    import difflib  # only for one-word prompts: every other run skips its import

    near = difflib.get_close_matches(word.lower(), [*commands, *RESERVED], n=1, cutoff=0.8)
    if near:
        exists = near[0] in commands
        meant = f"did you mean `{prog} {near[0]}`?" if exists else f"`{near[0]}` is not a command (yet)."
        raise UsageError(
            f"{word!r} looks like a command, not a picture to draw",
            f"{meant} To draw the word itself, run `{prog} generate {shlex.quote(word)}`",
        )


def run_generate(
    argv: Sequence[str],
    console: Console,
    stdin: TextIO | None,
    env: Mapping[str, str],
    commands: Sequence[str] = (),
) -> int:
    """`commands` is set when no command word was given: then a one-word prompt may be a typo of one."""
    console.json = "--json" in argv
    args = generate_parser(console.prog).parse_args(argv)
    if commands and args.prompt != "-":
        refuse_command_typo(args.prompt, console.prog, commands)
    console.verbose = args.verbose
    settings = settings_from(args, env)
    console.hide(settings.api_key)
    return make(_request_from(args, stdin), settings, args, console, env)


def make(
    request: ImageRequest,
    settings: Settings,
    args: argparse.Namespace,
    console: Console,
    env: Mapping[str, str],
) -> int:
    """Prepare, then make the request's pictures (or show them with --dry-run); print what was saved."""
    from ..batch import run_request
    from ..engine import Generator
    from ..limiter import DEFAULT_CEILING
    from ..request import prepare
    from ..servers import ServerCache
    from ..throttle import Throttle

    prepared = prepare(request, settings)
    generator = Generator(
        settings,
        warn=console.warn,
        info=console.info,
        cache=ServerCache(cache_dir(env)),
        # -n: as many at once as the server takes, up to a batch's default ceiling
        throttle=Throttle(min(DEFAULT_CEILING, request.count), report=console.info),
    )
    if args.dry_run:
        calls = generator.dry_run(prepared)
        console.document({"dry_run": True, "requests": calls})
        return ExitCode.OK

    def on_saved(saved: Any) -> None:
        if not args.json:
            console.result(marker(saved.path))

    try:
        result = run_request(generator, prepared, on_saved, progress=console.note)
    finally:
        generator.close()
    if request.count > 1:  # -v: what the pictures found out about the server
        console.info(f"capacity: {generator.throttle.found()}")
    for error in result.errors:
        console.error(error)
    if args.json:
        console.document(result.as_json())
    return result.exit_code
