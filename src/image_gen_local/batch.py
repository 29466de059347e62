"""The batch engine: many pictures at once, keeping the server exactly as busy as it allows.

Jobs stream in (a bounded queue, so a 1000-line file costs no more memory than a 10-line one); each picture
is a task for one of `concurrency` worker threads; every request passes one shared Throttle, so a 429
anywhere slows the whole batch down. A manifest records every picture as it is saved, so a rerun skips
what is done. `image-gen -n N` runs through the same engine with a single job (`run_request`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files
from .config import Settings
from .engine import Generator
from .errors import ExitCode, ImageGenError, UsageError
from .history import newest_in
from .jobs import JobSpec, check_jobs, read_jobs, to_request
from .manifest import Manifest
from .progress import HEARTBEAT_SECONDS, Heartbeat
from .request import Prepared, Result, SavedImage, prepare
from .retry import RetryPolicy
from .servers import ServerCache
from .throttle import Cancelled, Throttle

# Which failure decides the exit code when several kinds happened, most serious first.
SEVERITY = (
    ExitCode.UNEXPECTED,
    ExitCode.UNREACHABLE,
    ExitCode.AUTH,
    ExitCode.OUTPUT,
    ExitCode.QUOTA,
    ExitCode.DEADLINE,
    ExitCode.NO_IMAGE,
    ExitCode.BAD_INPUT,
    ExitCode.USAGE,
)
LISTED_BAD_LINES = 5  # a refused batch names this many bad lines (all of them, if only one more)
# Failures after which every later request would fail the same way.
SERVER_UNUSABLE = {ExitCode.UNREACHABLE, ExitCode.AUTH, ExitCode.OUTPUT}
# With -n, these also stop the other pictures of the command: the server is unusable, the one deadline is
# over, or the input pictures they all share are refused.
STOP_ALL = {*SERVER_UNUSABLE, ExitCode.DEADLINE, ExitCode.BAD_INPUT}


@dataclass
class BatchOptions:
    concurrency: int = 2
    per_minute: float | None = None  # a cap on requests per minute for the whole batch
    fail_fast: bool = False
    max_retries: int | None = None  # per picture; None: as many as the deadline allows
    manifest: Path | None = None  # None: <batch file name>.manifest.jsonl in the output folder
    deadline: float | None = None  # one deadline for everything (plain -n); None: --timeout per picture
    stop_on: set[ExitCode] = field(default_factory=lambda: set(SERVER_UNUSABLE))


@dataclass
class Job:
    """One line of work: its pictures, what an earlier run already saved, what this run saved or failed."""

    prepared: Prepared | None = None
    spec: JobSpec | None = None
    error: ImageGenError | None = None  # failed before any request (a bad input picture, an existing -o file)
    done: list[str] = field(default_factory=list)  # pictures saved by an earlier run
    saved: list[SavedImage] = field(default_factory=list)
    errors: list[ImageGenError] = field(default_factory=list)
    pending: int = 0
    started: float = 0.0
    retries: int = 0
    cancelled: bool = False  # the user stopped the batch (Ctrl-C, SIGTERM) before this job was done

    @property
    def count(self) -> int:
        if self.prepared is not None:
            return self.prepared.request.count
        return self.spec.count if self.spec else 1

    @property
    def ok(self) -> bool:
        return self.error is None and not self.errors and len(self.done) + len(self.saved) >= self.count

    def label(self) -> str:
        if self.spec is not None:
            return self.spec.label()
        return repr(self.prepared.prompt[:40]) if self.prepared else "job"


@dataclass
class BatchOutcome:
    jobs: list[Job] = field(default_factory=list)  # kept only when asked (plain -n, --json)
    total: int = 0
    succeeded: int = 0  # jobs whose every picture is saved (now or by an earlier run)
    skipped: int = 0  # already done by an earlier run: no request sent
    cancelled: int = 0  # stopped by the user before they were done; a rerun resumes them
    failed: list[tuple[str, ImageGenError]] = field(default_factory=list)
    pictures: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        """The most serious real failure; jobs skipped because the batch stopped only follow from it."""
        codes = {error.exit_code for _, error in self.failed if not isinstance(error, NotAttempted)}
        if not codes and self.failed:
            return ExitCode.UNEXPECTED
        return next((code for code in SEVERITY if code in codes), ExitCode.OK)


class _Run:
    """The state the workers share for one batch."""

    def __init__(
        self,
        generator: Generator,
        options: BatchOptions,
        on_saved: Callable[[SavedImage], None] | None,
        on_job: Callable[[Job], None] | None,
        status: Callable[[str], None],
        manifest: Manifest | None,
        keep_jobs: bool,
    ) -> None:
        self.generator = generator
        self.options = options
        self.on_saved = on_saved
        self.on_job = on_job
        self.status = status
        self.manifest = manifest
        self.keep_jobs = keep_jobs
        self.outcome = BatchOutcome()
        self.stop = threading.Event()
        self.interrupted = False  # Ctrl-C or SIGTERM: unfinished jobs are cancelled, not failed
        self.lock = threading.Lock()
        self.tasks: queue.Queue[tuple[Job, int] | None] = queue.Queue(maxsize=options.concurrency * 4)

    def work(self) -> None:
        while (item := self.tasks.get()) is not None:
            job, index = item
            try:
                if not self.stop.is_set():
                    self._picture(job, index)
            except BaseException as exc:  # a callback failed (stdout closed, disk full): stop, don't hang
                self._failed(job, _as_error(exc), stop=True)
            finally:
                self._task_done(job)

    def _picture(self, job: Job, index: int) -> None:
        assert job.prepared is not None
        deadline = self.options.deadline or time.monotonic() + self.generator.settings.timeout
        try:
            saved = self.generator.picture(job.prepared, index, deadline, self.status, self.ends_run)
        except Cancelled:
            return  # the run stopped while this picture waited for its turn: it counts as not attempted
        except Exception as exc:  # ImageGenError, or a bug: one job's failure
            self._failed(job, _as_error(exc))
            return
        with self.lock:
            job.saved.append(saved)
            job.retries += saved.retries
            self.outcome.pictures += 1
        if self.manifest is not None and job.spec is not None:
            self.manifest.append(_picture_record(job.spec, index, saved))
        if self.on_saved is not None:
            self.on_saved(saved)

    def _failed(self, job: Job, error: ImageGenError, stop: bool = False) -> None:
        with self.lock:
            job.errors.append(error)
        if stop or self.ends_run(error.exit_code):
            self.halt()

    def ends_run(self, code: ExitCode) -> bool:
        return self.options.fail_fast or code in self.options.stop_on

    def halt(self) -> None:
        """Stop the batch: no new task, no new request, no retry wait goes on."""
        self.stop.set()
        self.generator.throttle.cancel()

    def _task_done(self, job: Job) -> None:
        with self.lock:
            job.pending -= 1
            finished = job.pending == 0
        if finished:
            self.finish(job)

    def finish(self, job: Job) -> None:
        """A job has no task left: count it, record it, forget its pictures' bytes."""
        with self.lock:
            if job.ok:
                self.outcome.succeeded += 1
            elif self.interrupted and job.error is None and not _real_errors(job):
                job.cancelled = True
                self.outcome.cancelled += 1
            else:
                error = job.error or (job.errors[0] if job.errors else _not_attempted())
                self.outcome.failed.append((job.label(), error))
            if self.keep_jobs:
                self.outcome.jobs.append(job)
        if self.manifest is not None and job.spec is not None:
            self.manifest.append(_job_record(job))
        job.prepared = None  # input pictures can be large; a finished job keeps only its outcome
        if self.on_job is not None:
            self.on_job(job)


def run_jobs(
    generator: Generator,
    jobs: Iterable[Job],
    options: BatchOptions,
    *,
    on_saved: Callable[[SavedImage], None] | None = None,
    on_job: Callable[[Job], None] | None = None,
    status: Callable[[str], None] = lambda _message: None,
    manifest: Manifest | None = None,
    keep_jobs: bool = True,
) -> BatchOutcome:
    """Run every job's missing pictures on `options.concurrency` workers; jobs are consumed as they go."""
    run = _Run(generator, options, on_saved, on_job, status, manifest, keep_jobs)
    generator.throttle.reopen()
    started = time.monotonic()
    # Twice as many threads as request slots: while one thread saves its picture or waits out a retry
    # backoff (holding no slot), another uses the slot. The throttle, not the thread count, bounds what the
    # server sees.
    workers = [
        threading.Thread(target=run.work, name=f"image-gen-worker-{i}", daemon=True)
        for i in range(2 * options.concurrency)
    ]
    for worker in workers:
        worker.start()
    try:
        for job in jobs:
            run.outcome.total += 1
            if run.stop.is_set():
                job.errors.append(_not_attempted())
                run.finish(job)
                continue
            if job.error is not None:
                run.finish(job)
                if run.ends_run(job.error.exit_code):
                    run.halt()
                continue
            missing = range(len(job.done), job.count)
            if not missing:
                run.outcome.skipped += 1
                run.outcome.succeeded += 1
                if on_job is not None:
                    on_job(job)
                continue
            job.pending, job.started = len(missing), time.monotonic()
            for index in missing:
                run.tasks.put((job, index))
        for _ in workers:
            run.tasks.put(None)
        for worker in workers:
            worker.join()
    except BaseException:
        # Ctrl-C or SIGTERM: pictures in flight are lost, nothing else. No new file is started, and a
        # picture being written is given a moment to finish, so no temporary file is left behind.
        run.interrupted = True
        run.stop.set()
        generator.throttle.interrupt()
        for worker in workers:
            worker.join(timeout=2)
        raise
    finally:
        run.outcome.seconds = time.monotonic() - started
    return run.outcome


def run_request(
    generator: Generator,
    prepared: Prepared,
    on_saved: Callable[[SavedImage], None] | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """All pictures of one request (`-n`), within one deadline, as many at once as the generator's
    throttle allows; a "still working" line every `heartbeat` seconds through `progress` (by default the
    generator's `warn`)."""
    deadline = time.monotonic() + generator.settings.timeout
    options = BatchOptions(
        concurrency=generator.throttle.concurrency, deadline=deadline, stop_on=set(STOP_ALL)
    )
    with Heartbeat(progress or generator.warn, heartbeat) as beat:
        outcome = run_jobs(generator, [Job(prepared=prepared)], options, on_saved=on_saved, status=beat.set)
    [job] = outcome.jobs
    errors = job.errors
    if not errors and len(job.saved) < prepared.request.count:
        errors = [NotAttempted("the run stopped before every picture was made", "run it again")]
    missing = prepared.request.count - len(job.saved) - len(job.errors)
    if missing > 0 and job.errors:
        generator.warn(f"{missing} more picture(s) not attempted after: {job.errors[-1]}")
    return Result(job.saved, errors)


@dataclass
class BatchRun:
    """What `run_batch` did: the outcome, where it was recorded, how often the server made everyone wait."""

    outcome: BatchOutcome
    manifest: Path
    jobs: int
    pictures: int
    pauses: int  # long waits the server asked of everyone
    slowdowns: int  # overload events that lowered the concurrency


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
    alert: Callable[[str], None] | None = None,
) -> BatchRun:
    """Check every line of a batch (before any request), then run what the manifest says is missing.

    `lines` is called twice and must give the same lines each time (a file is read twice, streamed).
    Relative paths in jobs start from `base` (the batch file's folder). Raises UsageError for bad lines.
    `alert` gets what must be said even when `warn` is quiet (a history that cannot be written).
    """
    options = options or BatchOptions()
    base = base or Path.cwd()
    defaults = defaults or {}
    jobs, pictures, problems = check_jobs(lines(), defaults, base)
    if problems:
        shown = problems if len(problems) <= LISTED_BAD_LINES + 1 else problems[:LISTED_BAD_LINES]
        more = f" (and {len(problems) - len(shown)} more)" if len(shown) < len(problems) else ""
        raise UsageError(
            f"{len(problems)} bad line(s) in {name}: {'; '.join(shown)}{more}",
            "fix them and run again; nothing was sent",
        )
    if jobs == 0:
        raise UsageError(f"{name} holds no jobs", "write one prompt, or one JSON job, per line")
    output_dir = files.prepare_dir(settings.output_dir)
    files.sweep_temps(output_dir)
    manifest = Manifest(options.manifest or output_dir / f"{Path(name).stem or 'batch'}.manifest.jsonl")
    done = manifest.done()
    newest = newest_in(settings.history_file)  # `@last` in a job: the newest picture when the batch began

    def feed() -> Iterator[Job]:
        for spec in read_jobs(lines(), defaults):
            assert isinstance(spec, JobSpec)  # every line was checked above
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

    throttle = Throttle(options.concurrency, options.per_minute)
    generator = Generator(
        settings,
        warn=warn,
        info=info,
        cache=cache,
        policy=RetryPolicy(max_retries=options.max_retries),
        throttle=throttle,
        alert=alert,
    )
    if on_start is not None:
        on_start(jobs, pictures)
    try:
        outcome = run_jobs(
            generator, feed(), options, on_saved=on_saved, on_job=on_job, manifest=manifest, keep_jobs=False
        )
    finally:
        generator.close()
        manifest.close()
    return BatchRun(outcome, manifest.path, jobs, pictures, throttle.pauses, throttle.decreases)


class NotAttempted(ImageGenError):
    """A job the batch never got to, because it stopped early."""


def _as_error(exc: BaseException) -> ImageGenError:
    if isinstance(exc, ImageGenError):
        return exc
    return ImageGenError(f"unexpected {type(exc).__name__}: {exc}", "please report it")


def _real_errors(job: Job) -> list[ImageGenError]:
    return [error for error in job.errors if not isinstance(error, NotAttempted)]


def _not_attempted() -> ImageGenError:
    return NotAttempted("not attempted: the batch stopped early", "fix the first failure and run it again")


def _picture_record(spec: JobSpec, index: int, saved: SavedImage) -> dict[str, Any]:
    return {"type": "picture", "job": spec.key, "line": spec.line, "index": index, **saved.as_json()}


def _job_record(job: Job) -> dict[str, Any]:
    assert job.spec is not None
    error = job.error or (job.errors[0] if job.errors else None)
    record: dict[str, Any] = {
        "type": "job",
        "job": job.spec.key,
        "line": job.spec.line,
        "prompt": job.spec.prompt,
        "status": "ok" if job.ok else "cancelled" if job.cancelled else "failed",
        "paths": [*job.done, *(str(s.path) for s in job.saved)],
        "sizes": [[s.width, s.height] for s in job.saved],
        "seconds": round(time.monotonic() - job.started, 3) if job.started else 0.0,
        "retries": job.retries,
    }
    if error is not None:
        record["error"] = error.as_json()
    return record
