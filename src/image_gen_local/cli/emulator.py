"""`image-gen emulator`: serve the offline emulator (SYNTHETIC pictures) on a port until Ctrl-C."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ExitCode, ImageGenError, UsageError
from .args import Parser
from .console import Console, Terminated

if TYPE_CHECKING:
    from ..emulator import EmulatorConfig


def run_emulator(argv: Sequence[str], console: Console) -> int:
    from ..emulator import Emulator, serve
    from ..emulator.faults import listing

    args = emulator_parser(console.prog).parse_args(argv)
    if (args.queue or args.capacity_503) and args.capacity is None:
        raise UsageError("--queue and --capacity-503 need --capacity K", "add --capacity 3, say")
    if args.capacity is not None and args.capacity < 1:
        raise UsageError(f"--capacity must be at least 1, not {args.capacity}", "leave it out for no limit")
    if args.list_faults:
        for line in listing():
            console.result(line)
        return ExitCode.OK
    try:
        config = _config(args)
        Emulator(config)  # validates the fault options before binding the port
    except ValueError as exc:
        raise UsageError(str(exc), f"see `{console.prog} emulator --list-faults`") from None
    try:
        serve(config, args.host, args.port)
    except Terminated:  # SIGTERM is how a service manager stops a server: a normal end, not an error
        console.say("emulator stopped")
        return ExitCode.OK
    except (OSError, OverflowError) as exc:
        raise ImageGenError(
            f"cannot listen on {args.host}:{args.port} ({getattr(exc, 'strerror', None) or exc})",
            "is something (Antigravity?) already there? pick another --port",
            ExitCode.USAGE,
        ) from None
    return ExitCode.OK


def _config(args: argparse.Namespace) -> EmulatorConfig:
    from ..emulator import EmulatorConfig

    config = EmulatorConfig(
        api_key=args.api_key,
        latency=args.latency,
        image_format=args.format,
        verbose=args.verbose,
        faults=args.faults,
        fault_rate=args.fault_rate,
        fault_pool=args.fault_pool,
        seed=args.seed,
        capacity=args.capacity,
        queue=args.queue,
        capacity_status=503 if args.capacity_503 else 429,
    )
    if args.models:
        config.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    return config


def emulator_parser(prog: str) -> Parser:
    from ..emulator.faults import CATALOGUE, OK

    parser = Parser(
        prog=f"{prog} emulator",
        description="Serve the offline emulator: an Antigravity-like API that draws SYNTHETIC pictures.",
        epilog=textwrap.fill(
            f"Faults: {OK}, {', '.join(CATALOGUE)}. --list-faults says what each does.",
            width=78,
            break_on_hyphens=False,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument(
        "--capacity",
        type=int,
        metavar="K",
        help="work on at most K image requests at once; refuse the rest at once with 429 All accounts "
        "exhausted (change it while running: POST /emulator/capacity)",
    )
    parser.add_argument(
        "--capacity-503",
        action="store_true",
        help="refuse with 503 MODEL_CAPACITY_EXHAUSTED instead of 429",
    )
    parser.add_argument(
        "--queue", action="store_true", help="beyond --capacity, queue requests instead of refusing them"
    )
    parser.add_argument("--list-faults", action="store_true", help="list the faults and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request on stderr")
    return parser
