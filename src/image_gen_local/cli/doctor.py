"""`image-gen doctor`: can generation work here? One line per check on stdout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .args import Parser, connection_options, settings_from
from .console import Console


def run_doctor(argv: Sequence[str], console: Console, env: Mapping[str, str]) -> int:
    parser = Parser(
        prog=f"{console.prog} doctor", description="Check that generation can work; one line per check."
    )
    connection_options(parser)
    args = parser.parse_args(argv)
    console.verbose = args.verbose
    settings = settings_from(args, env)
    console.hide(settings.api_key)
    from ..doctor import run_checks

    return run_checks(settings, console.result)
