"""Every benchmark, one command: `python bench/run.py [--only overhead,soak,batch] [--quick]`.

Run it with the interpreter where the package is installed (not editable), so start-up is measured from
byte-compiled code. Each benchmark writes its own section of bench/README.md (not with --quick).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import batch
import capacity
import history
import hostile
import mcp_start
import overhead
import soak

SUITES: dict[str, Callable[[Sequence[str]], int]] = {
    "overhead": overhead.main,
    "soak": soak.main,
    "batch": batch.main,
    "hostile": hostile.main,
    "mcp": mcp_start.main,
    "history": history.main,
    "capacity": capacity.main,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated: {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="fewer runs, and leave bench/README.md alone")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SUITES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    worst = 0
    for name in chosen:
        started = time.perf_counter()
        print(f"bench: == {name} ==", file=sys.stderr, flush=True)
        worst = max(worst, SUITES[name](["--quick"] if args.quick else []))
        print(f"bench: {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return worst


if __name__ == "__main__":
    sys.exit(main())
