"""Batch files: one job per line, JSONL or plain text. Pure and streamed, so a long file costs no memory.

A JSONL line is `{"prompt": ..., "aspect_ratio": "16:9", "resolution": "2k", "image": ["a.jpg"], "count": 2,
"output": "cover.png"}` (any generate option by its long name, `-` or `_`); any other line is a prompt.
Blank lines and lines starting with `#` are skipped. Each job gets a key from what it asks for, so a rerun
recognises the jobs it already finished even if lines were added or moved.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ImageGenError
from .request import ImageRequest, check_request, request_from_options

# Options a job line may set; the rest (server, key, folder, deadline) belong to the whole batch.
JOB_OPTIONS = ("prompt", "image", "size", "resolution", "aspect_ratio", "count", "output")
BOM = "\ufeff"


@dataclass(frozen=True)
class JobSpec:
    """One line of a batch file, with the batch's defaults applied."""

    line: int
    prompt: str
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    @property
    def count(self) -> int:
        return int(self.options.get("count", 1))

    def label(self) -> str:
        short = " ".join(self.prompt.split())
        return f"line {self.line} ({short[:40] + '…' if len(short) > 40 else short!r})"


@dataclass(frozen=True)
class JobError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _normalise(raw: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in raw.items():
        key = name.replace("-", "_")
        if key not in JOB_OPTIONS:
            raise ValueError(f"unknown option {name!r}; a job may set {', '.join(JOB_OPTIONS)}")
        if value is not None:
            options[key] = value
    if isinstance(options.get("image"), str):
        options["image"] = [options["image"]]
    return options


def parse_line(text: str) -> dict[str, Any] | None:
    """One line into job options (None for blank lines and comments); raises ValueError."""
    line = text.strip()
    if not line or line.startswith("#"):
        return None
    if not line.startswith("{"):
        return {"prompt": line}
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ValueError("a JSON job must be an object")
    return _normalise(raw)


def _digest(options: dict[str, Any]) -> str:
    """Stable identity of what a job asks for; a job's key adds which repeat of an identical line it is."""
    canonical = json.dumps(options, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def read_jobs(lines: Iterable[str], defaults: dict[str, Any]) -> Iterator[JobSpec | JobError]:
    """Jobs in file order, each with the batch defaults under its own options, or a JobError for its line."""
    base = _normalise({k: v for k, v in defaults.items() if v is not None})
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if number == 1:  # a byte order mark (Windows editors write one) is not part of the first job
            text = text.removeprefix(BOM)
        try:
            parsed = parse_line(text)
        except ValueError as exc:
            yield JobError(number, str(exc))
            continue
        if parsed is None:
            continue
        options = {**base, **parsed}
        prompt = options.pop("prompt", None)
        if not isinstance(prompt, str) or not prompt.strip():
            yield JobError(number, "no prompt")
            continue
        digest = _digest({"prompt": prompt, **options})
        seen[digest] = seen.get(digest, 0) + 1
        yield JobSpec(number, prompt, options, f"{digest}-{seen[digest]}")


def to_request(spec: JobSpec, base: Path) -> ImageRequest:
    """The job as an ImageRequest, paths relative to the batch file's folder. Raises ValueError."""
    options = spec.options
    images = options.get("image") or []
    if not isinstance(images, list):
        raise ValueError("image must be a path or a list of paths")
    return request_from_options(
        spec.prompt,
        images=[str(p) for p in images],
        size=options.get("size"),
        resolution=options.get("resolution"),
        aspect_ratio=options.get("aspect_ratio"),
        count=options.get("count", 1),
        output=str(options["output"]) if options.get("output") else None,
        base=base,
    )


def check_jobs(lines: Iterable[str], defaults: dict[str, Any], base: Path) -> tuple[int, int, list[str]]:
    """A first pass over the whole file before any request: (jobs, pictures, problems by line)."""
    jobs = pictures = 0
    problems: list[str] = []
    outputs: dict[str, int] = {}  # each job's exact output file, by the line that names it first
    for item in read_jobs(lines, defaults):
        if isinstance(item, JobError):
            problems.append(str(item))
            continue
        try:
            request = to_request(item, base)
            check_request(request)
        except (ValueError, ImageGenError) as exc:
            problems.append(f"line {item.line}: {exc}")
            continue
        if request.output is not None:  # two jobs would both pay, and the second could not save
            where = os.path.abspath(request.output.expanduser())
            first = outputs.setdefault(where, item.line)
            if first != item.line:
                problems.append(f"line {item.line}: output {where} is already line {first}'s")
                continue
        jobs += 1
        pictures += request.count
    return jobs, pictures, problems


def parse_rate(text: str) -> float:
    """`30/min`, `30` (per minute), `0.5/s` or `600/h` into requests per minute; raises ValueError."""
    number, _, unit = text.strip().lower().partition("/")
    factor = {
        "": 1.0,
        "m": 1.0,
        "min": 1.0,
        "minute": 1.0,
        "s": 60.0,
        "sec": 60.0,
        "second": 60.0,
        "h": 1 / 60,
        "hr": 1 / 60,
        "hour": 1 / 60,
    }
    try:
        value = float(number) * factor[unit.strip()]
    except (ValueError, KeyError):
        raise ValueError(f"rate {text!r} is not N/min, N/s or N/h; use e.g. --rate 30/min") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"rate {text!r} must be a number more than 0")
    return value
