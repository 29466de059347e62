"""Soak: many pictures against an emulator that fails 30 % of image requests with transient faults.

Every picture must arrive and the file count must be exact; the wall time is reported beside a fault-free
run of the same size, measured in the same process. Time is scaled so the run takes minutes, not hours: the
emulator takes LATENCY seconds per picture where a real 1K picture takes ~20 s, and every delay on the
client (its retry backoff) and in the faults (Retry-After, retryDelay) is scaled by the same factor, which
leaves the ratio between the two runs as it would be in real time.

Usage: python bench/soak.py [--requests 200] [--rate 0.3] [--latency 0.25] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path

from PIL import Image

from common import publish, teller
from image_gen_local.batch import run_request
from image_gen_local.config import Settings
from image_gen_local.emulator import Emulator, EmulatorConfig
from image_gen_local.emulator.faults import CATALOGUE, TRANSIENT
from image_gen_local.engine import Generator
from image_gen_local.request import ImageRequest, prepare
from image_gen_local.retry import RetryPolicy

TITLE = "Soak: last results"
say = teller("soak")
REAL_LATENCY = 20.0  # seconds a real 1K picture takes; the time scale is LATENCY / REAL_LATENCY
TARGET = 1.5


@dataclass
class Run:
    label: str
    seconds: float
    saved: int
    files: int
    failed: list[str]
    faults: int
    retries: int
    requests: int


def scaled_policy(scale: float) -> RetryPolicy:
    default = RetryPolicy()
    delays = {
        f.name: getattr(default, f.name) * scale
        for f in fields(RetryPolicy)
        if f.name.endswith(("_delay", "_retry"))
    }
    return replace(default, **delays)


def scaled_pool(scale: float) -> str:
    """The transient pool, with the delays the faults state scaled like everything else."""
    items = []
    for name in TRANSIENT:
        default = CATALOGUE[name].default
        items.append(f"{name}:{default * scale:.4f}" if default is not None else name)
    return ",".join(items)


def soak(label: str, requests: int, config: EmulatorConfig, scale: float, folder: Path) -> Run:
    out = folder / label
    failed: list[str] = []
    saved = retries = 0
    with Emulator(config) as emu:
        settings = Settings(
            base_url=emu.base_url, output_dir=out, timeout=600 * scale * 10, data_dir=out.parent / "data"
        )
        generator = Generator(settings, warn=lambda _line: None, policy=scaled_policy(scale))
        started = time.perf_counter()
        try:
            for i in range(requests):
                result = run_request(
                    generator,
                    prepare(ImageRequest(f"soak picture {i}, a lighthouse at dusk"), settings),
                    heartbeat=0,
                )
                saved += len(result.images)
                retries += sum(image.retries for image in result.images)
                failed += [str(error) for error in result.errors]
        finally:
            generator.close()
        seconds = time.perf_counter() - started
        faults = sum(1 for r in emu.requests if r.fault)
        posts = sum(1 for r in emu.requests if r.route == "generations")
    files = sorted(out.iterdir())
    for path in files:
        with Image.open(path) as image:
            image.load()  # every file is a complete picture
    return Run(label, seconds, saved, len(files), failed, faults, retries, posts)


def report(clean: Run, faulty: Run, args: argparse.Namespace, scale: float) -> str:
    ratio = faulty.seconds / clean.seconds
    ok = faulty.saved == faulty.files == args.requests and not faulty.failed and clean.saved == args.requests
    rows = [
        "| run | wall time, s | saved | files | failed | faults injected | retries | requests sent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in (clean, faulty):
        rows.append(
            f"| {run.label} | {run.seconds:.1f} | {run.saved} | {run.files} | {len(run.failed)} "
            f"| {run.faults} | {run.retries} | {run.requests} |"
        )
    return "\n".join(
        [
            f"{datetime.now():%Y-%m-%dT%H:%M}; {args.requests} pictures one after another; random transient "
            f"faults at {args.rate:.0%} of image requests (pool: {', '.join(TRANSIENT)}), seed {args.seed}",
            "",
            *rows,
            "",
            f"- faulty / fault-free wall time: **{ratio:.2f}** (target <= {TARGET}): "
            f"{'met' if ratio <= TARGET else 'NOT met'}",
            f"- every picture delivered and the file count exact: {'yes' if ok else 'NO'}",
            f"- time scale {scale:g}: the emulator takes {args.latency:g} s per picture (a real one "
            f"~{REAL_LATENCY:g} s); retry delays and the delays the faults state are scaled alike",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--latency", type=float, default=0.25, help="emulator seconds per picture")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="40 pictures, and leave bench/README.md alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = 40
    scale = args.latency / REAL_LATENCY
    with tempfile.TemporaryDirectory(prefix="image-gen-soak-") as tmp:
        say(f"fault-free: {args.requests} pictures...")
        clean = soak("fault-free", args.requests, EmulatorConfig(latency=args.latency), scale, Path(tmp))
        say(f"with {args.rate:.0%} transient faults: {args.requests} pictures...")
        config = EmulatorConfig(
            latency=args.latency, fault_rate=args.rate, fault_pool=scaled_pool(scale), seed=args.seed
        )
        faulty = soak("faulty", args.requests, config, scale, Path(tmp))
    section = report(clean, faulty, args, scale)
    publish(TITLE, section, args.quick, say)
    return 0 if faulty.saved == args.requests and not faulty.failed else 1


if __name__ == "__main__":
    sys.exit(main())
