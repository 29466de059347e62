"""Soak of hostile answers: every run ends in time, in bounded memory, no exit 1, nothing partial, no key.

`python bench/hostile.py [--quick] [--rounds N] [--timeout S]`. The hostile server is the bundled emulator
(in this process), one of its faults on every request of a run (`--fault-rate 1 --fault-pool NAME`; a fault
aimed at `/v1/models` is scripted for the run's probe); each run is the real command in its own process
(`python -m image_gen_local`) with a 48-character key and its own cache folder, measured with `os.wait4`
(wall time, peak RSS). The baseline is the well-behaved answer (`good`), measured in the same run; figures
are reported against it and against the targets: every run within --timeout + 2 s, peak RSS under 300 MB,
no exit 1, no partial or overwritten file, no 6-character piece of the key in any output.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import clean_env, publish, teller
from image_gen_local.emulator import Emulator
from image_gen_local.emulator.faults import CATALOGUE, MODELS, parse_spec

TITLE = "hostile: last results"
say = teller("hostile")
KEY = "sk-soak-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
SLACK, RSS_TARGET_MIB = 2.0, 300

# What each run's server does: a label, and the emulator fault on every request ("" = behave).
ANSWERS: dict[str, str] = {
    "good": "",
    "trickle": "trickle:0.3",
    "silent": "slow:60",
    "hang-download": "hang-download",
    "models-slow": "models-slow:60",
    "redirect-loop": "redirect-loop",
    "gzip-bomb-200": "gzip-bomb",
    "deflate-bomb-200": "deflate-bomb",
    "gzip-bomb-500": "500-gzip-bomb",
    "lying-encoding": "lying-encoding",
    "error-cut-short": "error-cut-short",
    "nested-json": "nested-json",
    "markdown-bait": "markdown-bait",
    "key-echo": "key-echo",
    "terminal-escapes": "terminal-escapes",
    "retry-after-0": "429-zero-wait",
    "error-429-in-200": "error-in-200",
    "wrong-shape": "wrong-shape",
    "models-wrong-shape": "models-wrong-shape",
    "file-url": "file-url",
    "degenerate": "degenerate",
    "rotated": "rotated",
    "cmyk": "cmyk",
    "16-bit": "16-bit",
    "animated": "animated",
    "transparent": "transparent",
}


def arm(emulator: Emulator, fault: str) -> None:
    """Put the emulator in `fault` for the next run: on every image request, or on the run's probe."""
    emulator.faults.clear()
    if not fault:
        return
    spec = parse_spec(fault)
    if spec is not None and spec.fault.target == MODELS:
        emulator.faults.push([spec])
    else:
        emulator.faults.configure(rate=1.0, pool=[fault])


# Children are spawned from this small launcher: Linux counts the spawning process's own high-water mark in
# a child's ru_maxrss, and this process holds the answers.
LAUNCHER = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as sink:
    child = subprocess.Popen(sys.argv[2:], stdout=sink, stderr=sink)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


@dataclass
class Run:
    code: int
    seconds: float
    rss_mib: float
    leak: bool  # a 6-character piece of the key in stdout or stderr
    partial: bool  # a hidden or .part file left, or a picture file without exit 0 (or none with it)
    overwritten: bool  # the file already in the folder changed


def one_run(url: str, folder: Path, timeout: float) -> Run:
    folder.mkdir(parents=True)
    env = clean_env(folder.parent)  # its own history, not the user's
    env["IMAGE_GEN_CACHE_DIR"] = str(folder.parent / f"{folder.name}.cache")  # each run probes
    sentinel = folder / "already-here.png"
    sentinel.write_bytes(b"keep me")
    args = [sys.executable, "-m", "image_gen_local", "a lighthouse at dusk", "--base-url", url, "--json"]
    args += ["--api-key", KEY, "--timeout", str(timeout), "--output-dir", str(folder)]
    output = folder.parent / f"{folder.name}.out"
    started = time.monotonic()
    command = [sys.executable, "-c", LAUNCHER, str(output), *args]
    launched = subprocess.run(command, capture_output=True, env=env)
    seconds = time.monotonic() - started
    code, rss = (int(v) for v in launched.stdout.split())
    text = output.read_text("utf-8", "replace")
    files = [p for p in folder.iterdir() if p != sentinel]
    return Run(
        code,
        seconds,
        rss / 1024,
        any(KEY[i : i + 6] in text for i in range(len(KEY) - 5)),
        any(p.name.startswith(".") or p.suffix == ".part" for p in files) or len(files) != (code == 0),
        sentinel.read_bytes() != b"keep me",
    )


def measure(emulator: Emulator, labels: list[str], rounds: int, timeout: float) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory() as temp:
        for round_ in range(rounds):
            for label in labels:
                arm(emulator, ANSWERS[label])
                folder = Path(temp) / f"{label}-{round_}"
                results[label].append(one_run(emulator.base_url, folder, timeout))
    return results


def report(results: dict[str, list[Run]], timeout: float) -> tuple[str, bool]:
    base_s = max(r.seconds for r in results["good"])
    base_rss = max(r.rss_mib for r in results["good"])
    lines = [
        "| answer | emulator fault | exit codes | worst wall (s) | vs good "
        "| worst peak RSS (MiB) | vs good |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, runs in results.items():
        worst_s, worst_rss = max(r.seconds for r in runs), max(r.rss_mib for r in runs)
        codes = ", ".join(str(c) for c in sorted({r.code for r in runs}))
        bad = [k for k in ("leak", "partial", "overwritten") if any(getattr(r, k) for r in runs)]
        fault = f"`{ANSWERS[mode]}`" if ANSWERS[mode] else "-"
        lines.append(
            f"| {mode} | {fault} | {codes}{' ' + ', '.join(bad) if bad else ''} | {worst_s:.1f} | "
            f"{worst_s / base_s:.1f}x | {worst_rss:.0f} | {worst_rss / base_rss:.2f}x |"
        )
    every = [r for runs in results.values() for r in runs]
    worst_s, worst_rss = max(r.seconds for r in every), max(r.rss_mib for r in every)
    exit_1 = sum(r.code == 1 for r in every)
    files = sum(r.partial or r.overwritten for r in every)
    leaks = sum(r.leak for r in every)
    ok = worst_s <= timeout + SLACK and worst_rss < RSS_TARGET_MIB and not (exit_1 or files or leaks)
    summary = (
        f"{len(every)} runs ({len(results)} answers) at --timeout {timeout:g}: worst wall {worst_s:.1f} s "
        f"(target <= {timeout + SLACK:g} s), worst peak RSS {worst_rss:.0f} MiB (target < {RSS_TARGET_MIB}), "
        f"exit 1: {exit_1}, partial or overwritten files: {files}, runs with a key piece in any output: "
        f"{leaks}. {'All targets met.' if ok else 'TARGETS MISSED.'}"
    )
    return summary + "\n\n" + "\n".join(lines), ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, and leave bench/README.md alone")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    assert all(parse_spec(fault) for fault in ANSWERS.values() if fault), "unknown emulator fault"
    hostile = {fault.split(":")[0] for fault in ANSWERS.values() if fault}
    left_out = [name for name, fault in CATALOGUE.items() if name not in hostile and not fault.transient]
    with Emulator() as emulator:
        results = measure(emulator, list(ANSWERS), 1 if args.quick else args.rounds, args.timeout)
    print(f"emulator faults not soaked here (the fault matrix covers them): {', '.join(left_out)}")
    text, ok = report(results, args.timeout)
    publish(TITLE, text, args.quick, say)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
