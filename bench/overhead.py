"""Client overhead benchmark: `image-gen` against the bare openai script, on canned emulator answers.

The emulator answers from a script (no rendering), so the server side costs the same for both clients and
what differs is the client: start-up, request, reading, checking and saving the picture. Every child runs
under this interpreter, which must be the one where the package is installed (byte-compiled), so start-up
is what users get. Usage: python bench/overhead.py [--repeat N] [--quick]; python bench/run.py runs
every benchmark. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import openai
import PIL

import image_gen_local
from common import README, canned_png, clean_env, images_answer, replace_section, teller
from image_gen_local.emulator import Emulator, EmulatorConfig, Reply

say = teller("overhead")

BENCH = Path(__file__).resolve().parent
BARE = BENCH / "bare.py"
LAUNCH = BENCH / "launch.py"
TITLE = "Overhead: last results"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"
MARKER = re.compile(r"^\[IMAGE_PATH\](.+)\[/IMAGE_PATH\]$", re.MULTILINE)
TIME_TARGET = 1.2  # 1K: ours / bare
MEMORY_FACTOR = 3  # 4K: ours' peak RSS <= 3 x answer body + interpreter baseline
MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One canned answer and the flags that ask for it."""

    name: str
    size: tuple[int, int]
    ratio: str
    tier: str
    flags: tuple[str, ...]


CASES = (
    Case("1K", (1024, 1024), "1:1", "1K", ()),
    Case("4K", (5504, 3072), "16:9", "4K", ("--resolution", "4k", "--aspect-ratio", "16:9")),
)


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_kib: int


@dataclass
class Samples:
    """Runs of one client on one case; medians are what we report (robust to a slow outlier)."""

    runs: list[Run] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def rss_mib(self) -> float:
        return statistics.median(r.rss_kib for r in self.runs) / 1024

    @property
    def spread(self) -> str:
        """min-max of the wall times: how much to trust a ratio near its target."""
        times = [r.seconds for r in self.runs]
        return f"{min(times):.3f}-{max(times):.3f} s"


@dataclass
class Answer:
    """A canned answer: the HTTP body (images API JSON with base64) and the PNG inside it."""

    body: bytes
    png_bytes: int


class BenchError(RuntimeError):
    """A child failed or printed no marker: the figures would be meaningless."""


# ---------------------------------------------------------------------------------------- canned answers


def canned_answer(case: Case) -> Answer:
    """The images-API answer Antigravity gives for response_format=b64_json."""
    png = canned_png(case.size)
    return Answer(images_answer(png).encode(), len(png))


# --------------------------------------------------------------------------------------------- children


class Launcher:
    """bench/launch.py in a child: spawns the clients so their ru_maxrss is not this process's peak."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(LAUNCH)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def run(self, argv: Sequence[str], cwd: Path) -> tuple[Run, str, str]:
        """Run one child to the end; raise BenchError unless it exited 0."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"argv": list(argv), "cwd": str(cwd)}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise BenchError("bench/launch.py died")
        done = json.loads(line)
        if done["code"] != 0:
            tail = done["stderr"].strip()[-800:]
            raise BenchError(f"{' '.join(argv[:4])}... exited {done['code']}: {tail}")
        return Run(done["seconds"], done["rss_kib"]), done["stdout"], done["stderr"]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)


def saved_path(stdout: str) -> Path:
    found = MARKER.findall(stdout)
    if len(found) != 1:
        raise BenchError(f"expected one [IMAGE_PATH] marker, got stdout {stdout[:300]!r}")
    return Path(found[0])


# ------------------------------------------------------------------------------------------------ bench


class Bench:
    """The emulator, a private home for the children, and the argv of each client."""

    def __init__(self, emulator: Emulator, launcher: Launcher, home: Path) -> None:
        self.emulator = emulator
        self.launcher = launcher
        self.home = home
        self.out_dir = home / "out"
        self.out_dir.mkdir()
        self.python = sys.executable
        self.notes: list[str] = []
        self.warmed = 0

    def ours(self, case: Case) -> list[str]:
        base = ["-m", "image_gen_local", PROMPT, "--base-url", self.emulator.base_url]
        return [self.python, *base, "--output-dir", str(self.out_dir), *case.flags]

    def bare(self, case: Case) -> list[str]:
        where = [self.emulator.base_url, str(self.out_dir)]
        return [self.python, str(BARE), *where, case.ratio, case.tier, PROMPT]

    def interpreter(self) -> list[str]:
        return [self.python, "-c", "import openai, PIL.Image"]

    def client_run(self, argv: list[str], answer: Answer) -> Run:
        """One picture: queue the canned answer, run the client, check it took it and saved a file."""
        before = len(self.emulator.requests)
        self.emulator.script(Reply(200, answer.body, content_type="application/json"))
        run, stdout, stderr = self.launcher.run(argv, self.home)
        scripted = [r for r in self.emulator.requests[before:] if r.scripted]
        if len(scripted) != 1:
            raise BenchError(f"{argv[1]} made {len(scripted)} image requests, expected 1")
        path = saved_path(stdout)
        if path.stat().st_size == 0:
            raise BenchError(f"{path} is empty")
        path.unlink()  # same name next time, and the output folder stays small
        if stderr.strip() and stderr.strip() not in self.notes:
            self.notes.append(stderr.strip())
        return run

    def warm(self, answers: dict[str, Answer]) -> None:
        """Fill ours' /v1/models cache and the page cache, so the timed runs measure the steady state."""
        for case in CASES:
            self.client_run(self.ours(case), answers[case.name])
            self.client_run(self.bare(case), answers[case.name])
        self.warmed = len(self.emulator.requests)

    def check_steady(self) -> None:
        """Say so if ours asked /v1/models again after the warm-up: then the cache did not hold."""
        probes = sum(r.route == "models" for r in self.emulator.requests[self.warmed :])
        if probes:
            self.notes.append(f"ours asked /v1/models {probes} time(s) after the warm-up")

    def compare(self, case: Case, answer: Answer, repeat: int) -> tuple[Samples, Samples]:
        """ours, bare, ours, bare, ...: neighbours share the machine's noise."""
        ours, bare = Samples(), Samples()
        for _ in range(repeat):
            ours.runs.append(self.client_run(self.ours(case), answer))
            bare.runs.append(self.client_run(self.bare(case), answer))
        return ours, bare

    def baseline(self, repeat: int) -> Samples:
        """The floor both clients stand on: an interpreter that has imported openai and Pillow."""
        samples = Samples()
        for _ in range(repeat):
            samples.runs.append(self.launcher.run(self.interpreter(), self.home)[0])
        return samples


# ---------------------------------------------------------------------------------------------- results


@dataclass
class Results:
    repeat: int
    answers: dict[str, Answer]
    pairs: dict[str, tuple[Samples, Samples]]
    interp: Samples
    notes: list[str]

    def memory_budget_mib(self) -> float:
        return MEMORY_FACTOR * len(self.answers["4K"].body) / MIB + self.interp.rss_mib


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def table(results: Results) -> list[str]:
    """The figures as a Markdown table (readable on a terminal too)."""
    rows = [
        "| measure | ours | bare | ours - bare | ours/bare | target | met |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, (ours, bare) in results.pairs.items():
        ratio = ours.seconds / bare.seconds
        target, met = (f"<= {TIME_TARGET}x bare", yes(ratio <= TIME_TARGET)) if name == "1K" else ("-", "-")
        figures = (
            f"{ours.seconds:.3f} | {bare.seconds:.3f} | {ours.seconds - bare.seconds:+.3f} | {ratio:.2f}"
        )
        rows.append(f"| {name} wall time, s | {figures} | {target} | {met} |")
    for name, (ours, bare) in results.pairs.items():
        target, met = "-", "-"
        if name == "4K":
            budget = results.memory_budget_mib()
            target = f"<= {budget:.0f} MiB"
            met = yes(ours.rss_mib <= budget)
        figures = f"{ours.rss_mib:.0f} | {bare.rss_mib:.0f} | {ours.rss_mib - bare.rss_mib:+.0f}"
        rows.append(
            f"| {name} peak RSS, MiB | {figures} | {ours.rss_mib / bare.rss_mib:.2f} | {target} | {met} |"
        )
    return rows


def context(results: Results) -> list[str]:
    interp, budget = results.interp, results.memory_budget_mib()
    lines = [
        f'- interpreter baseline (`python -c "import openai, PIL.Image"`): {interp.seconds:.3f} s, '
        f"{interp.rss_mib:.0f} MiB peak RSS",
    ]
    for name, (ours, bare) in results.pairs.items():
        lines.append(f"- {name} wall-time spread (min-max): ours {ours.spread}, bare {bare.spread}")
    for name, answer in results.answers.items():
        lines.append(
            f"- {name} answer body: {len(answer.body) / MIB:.1f} MiB of JSON "
            f"(base64 of a {answer.png_bytes / MIB:.1f} MiB PNG)"
        )
    lines.append(
        f"- 4K memory budget: {MEMORY_FACTOR} x {len(results.answers['4K'].body) / MIB:.1f} MiB body + "
        f"{interp.rss_mib:.0f} MiB interpreter = {budget:.0f} MiB"
    )
    lines.append(
        f"- medians of {results.repeat} interleaved runs each (ours, bare, ours, bare, ...), after one "
        "warm-up run per client and size that also fills ours' /v1/models cache (steady state)"
    )
    lines.extend(f"- note: `{note[:300]}`" for note in results.notes)
    return lines


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    where = Path(image_gen_local.__file__).parent
    installed = "installed" if "site-packages" in where.parts else f"NOT installed: {where}"
    return (
        f"{datetime.now().isoformat(timespec='minutes')}; nproc {cpus}, {platform.machine()}, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"image-gen-local {image_gen_local.__version__} ({installed}); "
        f"openai {openai.__version__}; Pillow {PIL.__version__}"
    )


def report(results: Results) -> str:
    return "\n".join([machine(), "", *table(results), "", *context(results), ""])


# ------------------------------------------------------------------------------------------------- main


def measure(repeat: int) -> Results:
    say("making canned answers (noisy PNGs)...")
    answers = {case.name: canned_answer(case) for case in CASES}
    with tempfile.TemporaryDirectory(prefix="image-gen-bench-") as tmp, Emulator(EmulatorConfig()) as emu:
        launcher = Launcher(clean_env(Path(tmp)))
        try:
            bench = Bench(emu, launcher, Path(tmp))
            say("warming up...")
            bench.warm(answers)
            pairs = {}
            for case in CASES:
                say(f"{case.name}: {repeat} x (ours, bare)...")
                pairs[case.name] = bench.compare(case, answers[case.name], repeat)
            bench.check_steady()
            say("interpreter baseline...")
            interp = bench.baseline(repeat)
        finally:
            launcher.close()
        return Results(repeat, answers, pairs, interp, bench.notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per client and size (default 7)")
    parser.add_argument("--quick", action="store_true", help="2 runs each, and leave bench/README.md alone")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else max(1, args.repeat)
    started = time.perf_counter()
    try:
        results = measure(repeat)
    except BenchError as exc:
        say(f"failed: {exc}")
        return 1
    section = report(results)
    print(f"## {TITLE}\n\n{section}")
    if not args.quick:
        replace_section(TITLE, section)
        say(f"wrote {README}")
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
