"""A batch file run: every line checked before any request, the manifest claimed, then only what the
manifest says is missing is handed to the batch engine (`batch.run_jobs`).

The manifest is claimed (validated, locked, repaired) before the first request, so a second batch on the
same job file, a manifest that cannot be written, or a file that is not a manifest costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files
from .batch import LISTED_BAD_LINES, BatchOptions, BatchOutcome, Job, run_jobs
from .config import Settings
from .engine import Generator
from .errors import ImageGenError, UsageError
from .history import newest_in
from .jobs import JobError, JobSpec, check_jobs, read_jobs, to_request
from .manifest import Manifest
from .request import SavedImage, prepare
from .retry import RetryPolicy
from .servers import ServerCache
from .throttle import Throttle


@dataclass
class BatchRun:
    """What `run_batch` did: the outcome, where it was recorded, how often the server made everyone wait."""

    outcome: BatchOutcome
    manifest: Path
    jobs: int
    pictures: int
    pauses: int  # long waits the server asked of everyone
    slowdowns: int  # times the concurrency went down
    capacity: str = ""  # what the batch learned of the server's capacity, in words


def run_batch(
    lines: Callable[[], Iterable[str]],
    settings: Settings,
    options: BatchOptions | None = None,
    *,
    name: str = "batch",
    base: Path | None = None,
    defaults: dict[str, Any] | None = None,
    cache: ServerCache | None = None,
    warn: Callable[[str], None] = lambda _line: None,
    info: Callable[[str], None] | None = None,
    on_saved: Callable[[SavedImage], None] | None = None,
    on_job: Callable[[Job], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    notice: Callable[[str], None] = lambda _line: None,
    source: Path | None = None,
) -> BatchRun:
    """Check every line of a batch (before any request), then run what the manifest says is missing.

    `lines` is called twice and must give the same lines each time (a file is read twice, streamed).
    Relative paths in jobs start from `base` (the batch file's folder); `source` is the job file, which the
    manifest may not be. `notice` gets lines to show even without -v (a repaired manifest, a history that
    cannot be written). Raises
    UsageError for bad lines, OutputError when the manifest cannot be claimed; nothing is sent then.
    """
    options = options or BatchOptions()
    base = base or Path.cwd()
    defaults = defaults or {}
    jobs, pictures = _check(lines(), defaults, base, name)
    output_dir = files.prepare_dir(settings.output_dir)
    manifest = Manifest(options.manifest or output_dir / f"{Path(name).stem or 'batch'}.manifest.jsonl")
    _refuse_job_file(manifest.path, source)
    note = manifest.open()  # locked from here to the end of the run
    if note:
        notice(note)
    try:
        newest = newest_in(settings.history_file)  # `@last` in a job: the newest picture when the batch began
        feed = _feed(read_jobs(lines(), defaults), manifest.done(), base, settings, newest)
        throttle = Throttle(options.concurrency, options.per_minute, report=info)
        policy = RetryPolicy(max_retries=options.max_retries)
        generator = Generator(
            settings, warn=warn, info=info, cache=cache, policy=policy, throttle=throttle, alert=notice
        )
        if on_start is not None:
            on_start(jobs, pictures)
        try:
            outcome = run_jobs(
                generator, feed, options, on_saved=on_saved, on_job=on_job, manifest=manifest, keep_jobs=False
            )
        finally:
            generator.close()
    finally:
        manifest.close()
    return BatchRun(
        outcome, manifest.path, jobs, pictures, throttle.pauses, throttle.decreases, throttle.found()
    )


def _check(lines: Iterable[str], defaults: dict[str, Any], base: Path, name: str) -> tuple[int, int]:
    """Every line checked before any request: (jobs, pictures), or one UsageError listing the bad lines."""
    jobs, pictures, problems = check_jobs(lines, defaults, base)
    if problems:
        shown = problems if len(problems) <= LISTED_BAD_LINES + 1 else problems[:LISTED_BAD_LINES]
        more = f" (and {len(problems) - len(shown)} more)" if len(shown) < len(problems) else ""
        raise UsageError(
            f"{len(problems)} bad line(s) in {name}: {'; '.join(shown)}{more}",
            "fix them and run again; nothing was sent",
        )
    if jobs == 0:
        raise UsageError(f"{name} holds no jobs", "write one prompt, or one JSON job, per line")
    return jobs, pictures


def _feed(
    specs: Iterable[JobSpec | JobError],
    done: dict[str, list[str]],
    base: Path,
    settings: Settings,
    newest: int | None,
) -> Iterator[Job]:
    """The jobs, streamed: what the manifest has is done; a job whose inputs fail now fails alone."""
    for spec in specs:
        assert isinstance(spec, JobSpec)  # every line was checked before
        already = done.get(spec.key, [])
        if len(already) >= spec.count:
            yield Job(spec=spec, done=already)
            continue
        try:
            prepared = prepare(to_request(spec, base), settings, check_output=False, newest=newest)
        except ImageGenError as exc:
            yield Job(spec=spec, error=exc, done=already)
            continue
        yield Job(spec=spec, prepared=prepared, done=already)


def _refuse_job_file(manifest: Path, source: Path | None) -> None:
    """Appending outcomes to the job file would turn them into jobs: refuse before anything is written."""
    if source is None or not manifest.exists():
        return
    try:
        same = os.path.samefile(manifest, source)
    except OSError:
        return
    if same:
        raise UsageError(
            f"--manifest {manifest} is the job file itself",
            "give the manifest another name (by default it is FILE.manifest.jsonl in the output folder)",
        )
