"""The batch engine: many pictures at once, keeping the server exactly as busy as it allows.

Jobs stream in (a bounded queue, so a 1000-line file costs no more memory than a 10-line one); each picture
is a task for one of the worker threads; every request passes one shared Throttle, which learns how many
the server takes at once (up to `concurrency`), so a 429
anywhere slows the whole batch down. A manifest records every picture as it is saved, so a rerun skips
what is done (`batchfile.run_batch` runs a job file). `image-gen -n N` runs through the same engine with
a single job (`run_request`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files
from .engine import Generator
from .errors import ExitCode, ImageGenError
from .jobs import JobSpec
from .limiter import DEFAULT_CEILING
from .manifest import Manifest
from .progress import HEARTBEAT_SECONDS, Heartbeat
from .request import Prepared, Result, SavedImage
from .throttle import Cancelled

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
SAVE_GRACE = 10.0  # seconds a stopped run waits for pictures being written, so none is left half-written
JOIN_GRACE = 2.0  # ... and for workers to record their unfinished jobs as cancelled
LISTED_BAD_LINES = 5  # a refused batch names this many bad lines (all of them, if only one more)
# Failures after which every later request would fail the same way.
SERVER_UNUSABLE = {ExitCode.UNREACHABLE, ExitCode.AUTH, ExitCode.OUTPUT}
# With -n, these also stop the other pictures of the command: the server is unusable, the one deadline is
# over, or the input pictures they all share are refused.
STOP_ALL = {*SERVER_UNUSABLE, ExitCode.DEADLINE, ExitCode.BAD_INPUT}


@dataclass
class BatchOptions:
    concurrency: int = DEFAULT_CEILING  # a ceiling: the throttle learns the server's capacity below it
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
    # A failure of the run itself, not of a job: the manifest or stdout could not be written. It stopped
    # the batch; the pictures saved before it are still delivered.
    error: ImageGenError | None = None

    @property
    def exit_code(self) -> ExitCode:
        """The most serious real failure; jobs skipped because the batch stopped only follow from it."""
        codes = {error.exit_code for _, error in self.failed if not isinstance(error, NotAttempted)}
        if self.error is not None:
            codes.add(self.error.exit_code)
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
        self.folders: set[Path] = set()  # where pictures are saved: swept of our temporary files on a stop

    def work(self) -> None:
        """A worker never dies of an error: a dead worker would leave the queue full and the batch hung."""
        while (item := self.tasks.get()) is not None:
            job, index = item
            try:
                if not self.stop.is_set():
                    self._picture(job, index)
            except BaseException as exc:  # a bug in a callback: the run stops with it, nothing hangs
                self.broken(_as_error(exc))
            finally:
                self._task_done(job)

    def _picture(self, job: Job, index: int) -> None:
        assert job.prepared is not None
        deadline = self.options.deadline  # None: --timeout per picture, from its first request
        try:
            name = job.spec.label() if job.spec is not None else ""
            saved = self.generator.picture(job.prepared, index, deadline, self.status, self.ends_run, name)
        except Cancelled:
            return  # the run stopped while this picture waited for its turn: it counts as not attempted
        except Exception as exc:  # ImageGenError, or a bug: one job's failure
            self._failed(job, _as_error(exc))
            return
        with self.lock:
            job.saved.append(saved)
            job.retries += saved.retries
            self.outcome.pictures += 1
        if job.spec is not None:  # recorded first: a kill now costs no second payment for this picture
            self.record(_picture_record(job.spec, index, saved))
        self.tell(self.on_saved, saved)  # a saved picture gets its result line, whatever failed before

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

    def wind_down(self, workers: list[threading.Thread]) -> None:
        """Ctrl-C or SIGTERM: pictures in flight are lost, nothing else. No new file is started, a picture
        being written is finished (a second signal does not cut that short), workers get a moment to record
        their jobs as cancelled, and this process's temporary files are removed: nothing partial is left."""
        self.interrupted = True
        self.stop.set()
        throttle = self.generator.throttle
        throttle.interrupt()
        end = time.monotonic() + SAVE_GRACE
        join_end = time.monotonic() + JOIN_GRACE
        while True:
            try:
                throttle.drained(max(0.0, end - time.monotonic()))
                for worker in workers:
                    worker.join(timeout=max(0.0, join_end - time.monotonic()))
                break
            except BaseException:  # another Ctrl-C or SIGTERM: finish cleaning up first (it is bounded)
                if time.monotonic() >= end:
                    break
        for folder in self.folders:
            files.remove_own_temps(folder)

    def broken(self, error: ImageGenError) -> None:
        """The run itself failed (the manifest or stdout cannot be written): stop, keeping the first cause."""
        with self.lock:
            if self.outcome.error is None:
                self.outcome.error = error
        self.halt()

    def record(self, record: dict[str, Any]) -> None:
        """A manifest line; a manifest that cannot be written stops the batch (every later line would fail,
        and a picture not recorded is paid for again by the next run)."""
        if self.manifest is None:
            return
        try:
            self.manifest.append(record)
        except ImageGenError as exc:
            self.broken(exc)

    def tell(self, callback: Callable[[Any], None] | None, item: Any) -> None:
        """Call the caller's callback; one that fails (stdout closed) stops the batch instead of a worker."""
        if callback is None:
            return
        try:
            callback(item)
        except Exception as exc:
            self.broken(_as_error(exc))

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
        if job.spec is not None:
            self.record(_job_record(job))
        job.prepared = None  # input pictures can be large; a finished job keeps only its outcome
        self.tell(self.on_job, job)


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
                run.tell(on_job, job)
                continue
            job.pending, job.started = len(missing), time.monotonic()
            run.folders.add(job.prepared.output_dir if job.prepared else Path.cwd())
            for index in missing:
                run.tasks.put((job, index))
        for _ in workers:
            run.tasks.put(None)
        for worker in workers:
            worker.join()
    except BaseException:
        run.wind_down(workers)
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
    status: Callable[[str], None] | None = None,
) -> Result:
    """All pictures of one request (`-n`), within one deadline, as many at once as the generator's
    throttle allows; a "still working" line every `heartbeat` seconds through `progress` (by default the
    generator's `warn`); `status` hears each step as it starts ("picture 1 of 2: attempt 1 via …")."""
    deadline = time.monotonic() + generator.settings.timeout
    options = BatchOptions(concurrency=generator.throttle.ceiling, deadline=deadline, stop_on=set(STOP_ALL))
    with Heartbeat(progress or generator.warn, heartbeat) as beat:

        def step(text: str) -> None:
            beat.set(text)
            if status is not None:
                status(text)

        outcome = run_jobs(generator, [Job(prepared=prepared)], options, on_saved=on_saved, status=step)
    [job] = outcome.jobs
    errors = [*job.errors, *([outcome.error] if outcome.error else [])]
    if not errors and len(job.saved) < prepared.request.count:
        errors = [NotAttempted("the run stopped before every picture was made", "run it again")]
    missing = prepared.request.count - len(job.saved) - len(job.errors)
    if missing > 0 and job.errors:
        generator.warn(f"{missing} more picture(s) not attempted after: {job.errors[-1]}")
    return Result(job.saved, errors)


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
