"""The options the commands share, and argparse made to fail like every other error here.

A usage error is one line with the fix and exit code 2, never argparse's own two-line message: words that
spill out of an unquoted prompt are shown quoted back, a misspelt option gets "did you mean".
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from typing import NoReturn

from ..config import DEFAULTS, ENV, Settings, resolve
from ..errors import UsageError
from ..upstream import DEFAULT_MODEL


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line with the fix, and exit code 2."""

    intermixed = False  # positionals may also come after options (`again @1 --size 800x600 'new prompt'`)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parse = self.parse_known_intermixed_args if self.intermixed else self.parse_known_args
        parsed, extras = parse(args, namespace)
        if extras:
            raise self._unrecognized(parsed, list(extras))
        return parsed

    def _unrecognized(self, parsed: argparse.Namespace, extras: list[str]) -> UsageError:
        options = [o for o in extras if o.startswith("-") and o != "-"]
        if options:
            import difflib  # only for a mistyped option

            known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
            near = difflib.get_close_matches(options[0].split("=", 1)[0], known, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"see `{self.prog} --help`"
            return UsageError(f"unrecognized option {options[0]}", hint)
        prompt = getattr(parsed, "prompt", None)
        if isinstance(prompt, str):
            words = " ".join([prompt, *extras])
            return UsageError(
                f"the prompt is one argument, but it came as {len(extras) + 1} words",
                f"quote it: {self.prog} {shlex.quote(words)}",
            )
        return UsageError(f"unrecognized arguments: {' '.join(extras)}", f"see `{self.prog} --help`")


def defaults_epilog() -> str:
    """Where the defaults that matter come from, and how to change each (for --help)."""
    rows = [
        ("base_url", "server"),
        ("model", "model"),
        ("output_dir", "pictures go to"),
        ("timeout", "deadline"),
    ]
    shown = {**DEFAULTS, "timeout": f"{DEFAULTS['timeout']:g} s"}
    lines = [f"{label} {shown[key]} (--{key.replace('_', '-')}, env {ENV[key]})" for key, label in rows]
    return (
        "Defaults: "
        + "; ".join(lines)
        + ". Each can also be set in the config file ($IMAGE_GEN_CONFIG, else "
        "~/.config/image-gen-local/config.toml). Flags beat environment beat file."
    )


def connection_options(parser: argparse.ArgumentParser) -> None:
    """Connection options shared by generate, batch and doctor."""
    parser.add_argument("--model", help=f"image model (env IMAGE_GEN_MODEL; default {DEFAULT_MODEL})")
    parser.add_argument("--base-url", help="server URL, with or without /v1 (env IMAGE_GEN_BASE_URL)")
    parser.add_argument("--api-key", help="proxy API key if it needs one (env IMAGE_GEN_API_KEY)")
    parser.add_argument("--output-dir", help="folder for pictures (env IMAGE_GEN_OUTPUT_DIR)")
    parser.add_argument("--route", help="server API: auto, images or chat (default auto)")
    parser.add_argument(
        "--timeout",
        help="deadline in seconds, retries included (600): the whole command, or each picture of a batch",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="details on stderr")


def history_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="do not record the pictures in the history (env IMAGE_GEN_NO_HISTORY=1; config history = false)",
    )


def picture_options(parser: argparse.ArgumentParser, each: str = "", defaults: bool = True) -> None:
    """What to draw: the generate options. In a batch they are defaults for every job (`each` says so in
    --help), and in `again` they override the recipe: there, with `defaults=False`, None means not given."""
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH",
        help=f"input picture{each} (repeatable, at most 14; the first is the main one); "
        "@last, @2, ... or @id:42 is a picture from the history",
    )
    parser.add_argument(
        "--size", metavar="WxH", help=f"exact pixel size{each}; overrides --resolution/--aspect-ratio"
    )
    parser.add_argument(
        "--resolution",
        default="1k" if defaults else None,
        metavar="1k|2k|4k",
        help=f"tier{each} (default 1k)",
    )
    parser.add_argument(
        "--aspect-ratio",
        metavar="W:H",
        help=f"e.g. 16:9 or 2.39:1{each} (default 1:1; with --image, the main input's ratio)",
    )
    parser.add_argument(
        "-n",
        "--count",
        default="1" if defaults else None,
        metavar="N",
        help=f"pictures per prompt{each} (default 1)",
    )


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    flags = {
        "base_url": args.base_url,
        "api_key": args.api_key,
        "model": args.model,
        "output_dir": args.output_dir,
        "route": args.route,
        "timeout": args.timeout,
        "history": False if getattr(args, "no_history", False) else None,
    }
    return resolve(flags, env)


def whole(text: str | None, name: str, low: int, high: int) -> int | None:
    """A whole number option within bounds, or None when not given; UsageError otherwise."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise UsageError(f"{name} {text!r} is not a whole number from {low} to {high}", f"use e.g. {name} 2")
    return value
