"""Spawns the benchmarked clients from a small process, so each child's peak RSS is its own.

Linux carries the spawning process's memory high-water mark into a child's ru_maxrss (the address space it
had before exec counts), so children of bench/run.py, which holds the canned answers and the emulator, all
showed run.py's peak. This process stays ~10 MiB. Protocol: one JSON request per stdin line,
{"argv": [...], "cwd": "..."}; one JSON answer per stdout line, {"seconds", "rss_kib", "code", "stdout",
"stderr"}. The environment is this process's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any


def spawn(argv: list[str], cwd: str) -> dict[str, Any]:
    """Wall time from spawn to reap (what perf_counter around subprocess.run measures), and rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "seconds": seconds,
            "rss_kib": usage.ru_maxrss,
            "code": proc.returncode,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.write(json.dumps(spawn(request["argv"], request["cwd"])) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
