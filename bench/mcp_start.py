"""How fast `image-gen mcp` answers a client that has just started it: spawn to a finished handshake.

An MCP client starts the stdio server when it starts (or on first use) and waits for `initialize`; the
target is an answer within 1 s. Measured with the official SDK client, which spawns
`python -m image_gen_local mcp` and times out nothing: wall time from just before the spawn to the end of
the handshake, both ways clients do it today (`initialize`, "legacy") and the 2026 way (`server/discover`,
"auto"). Baseline in the same run: a bare interpreter importing the SDK's server (`mcp.server.mcpserver`),
the floor any server on this SDK pays. Medians of N runs, interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime

import anyio
from mcp import Client, StdioServerParameters

from common import publish, teller

TITLE = "MCP start-up: last results"
say = teller("mcp")


async def handshake(mode: str, env: dict[str, str]) -> float:
    params = StdioServerParameters(command=sys.executable, args=["-m", "image_gen_local", "mcp"], env=env)
    started = time.perf_counter()
    async with Client(params, mode=mode) as client:
        seconds = time.perf_counter() - started
        assert client.server_info is None or client.server_info.name == "image-gen-local"
    return seconds


def bare_import() -> float:
    """Spawn to the moment a bare interpreter has imported the SDK's server (it says so on stdout)."""
    code = "import sys, mcp.server.mcpserver; sys.stdout.write('x'); sys.stdout.flush(); sys.stdin.read()"
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        child.stdout.read(1)
        seconds = time.perf_counter() - started
        child.stdin.close()
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, and leave bench/README.md alone")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        env = {"IMAGE_GEN_CACHE_DIR": tmp, "XDG_CONFIG_HOME": tmp, "IMAGE_GEN_OUTPUT_DIR": tmp}
        anyio.run(handshake, "legacy", env)  # warm-up: the page cache holds the SDK's files from now on
        times: dict[str, list[float]] = {"legacy": [], "auto": [], "bare": []}
        for _ in range(runs):
            times["legacy"].append(anyio.run(handshake, "legacy", env))
            times["auto"].append(anyio.run(handshake, "auto", env))
            times["bare"].append(bare_import())
    median = {name: statistics.median(values) for name, values in times.items()}
    worst = {name: max(values) for name, values in times.items()}
    rows = [
        ("spawn to `initialize` answered (legacy handshake)", "legacy", "<= 1 s"),
        ("spawn to `server/discover` answered (2026 handshake)", "auto", "<= 1 s"),
        ("baseline: spawn to `import mcp.server.mcpserver` done", "bare", "-"),
    ]
    lines = [
        f"{datetime.now():%Y-%m-%dT%H:%M}; nproc {os.cpu_count()}; Python {sys.version.split()[0]}; "
        f"{runs} runs",
        "",
        "| measure | median | worst | target |",
        "|---|---:|---:|---|",
        *(f"| {label} | {median[k]:.2f} s | {worst[k]:.2f} s | {target} |" for label, k, target in rows),
        "",
        "- the server imports the SDK, then builds its tools; openai, Pillow and the engine are imported on "
        "the first tool call, so start-up is the SDK's import plus "
        f"{(median['legacy'] - median['bare']) * 1000:.0f} ms",
    ]
    section = "\n".join(lines)
    publish(TITLE, section, args.quick, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
