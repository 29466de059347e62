"""`image-gen demo`: the bundled emulator and two SYNTHETIC pictures, through the real client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import resolve
from .args import Parser
from .console import Console, marker


def run_demo(argv: Sequence[str], console: Console, env: Mapping[str, str]) -> int:
    parser = Parser(
        prog=f"{console.prog} demo",
        description="Start the bundled emulator and make two SYNTHETIC pictures through the client.",
    )
    parser.add_argument("--output-dir", help="folder for the demo pictures (default: the configured one)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    console.verbose = args.verbose
    settings = resolve({"output_dir": args.output_dir}, env)
    from ..demo import run_demo as demo

    return demo(settings, console, on_saved=lambda path: console.result(marker(path)))
