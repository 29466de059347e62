"""`image-gen batch FILE`: the batch engine's command line. Parses options, hands the job file to
`batch.run_batch`, and prints markers (stdout), progress and the summary (stderr)."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..batch import BatchOptions, Job, NotAttempted
from ..batchfile import BatchRun, run_batch
from ..config import cache_dir
from ..errors import OutputError, UsageError
from ..jobs import parse_rate
from ..limiter import DEFAULT_CEILING, MAX_CEILING
from ..progress import BatchProgress
from ..request import MAX_COUNT, SavedImage
from ..servers import ServerCache
from .args import Parser, connection_options, history_option, picture_options, settings_from, whole
from .console import Console, Terminated, marker

MAX_LINE_CHARS = 1_000_000  # a job line: a prompt (32 000 characters at most) and its options, with room
MAX_RETRIES = 1000
# Jobs piped in are spooled to a temporary file (often a RAM-backed /tmp): at most this many characters,
# some 200 000 jobs, so an endless producer (`yes | image-gen batch -`) is refused instead of filling it.
MAX_STDIN_CHARS = 64_000_000
LISTED_FAILURES = 20


def batch_parser(prog: str) -> Parser:
    parser = Parser(
        prog=f"{prog} batch",
        description="Many pictures from a JSONL file (one job per line) or a text file (one prompt per "
        "line). Rerunning the same command resumes: finished jobs are skipped.",
        epilog='A JSONL job: {"prompt": "...", "aspect_ratio": "16:9", "resolution": "2k", '
        '"image": ["a.jpg"], "count": 2, "output": "cover.png"}. Relative paths are relative to FILE. '
        "--timeout applies to each picture.",
    )
    parser.add_argument("file", help="the job file; - reads it from stdin")
    parser.add_argument(
        "--concurrency",
        default=str(DEFAULT_CEILING),
        metavar="N",
        help=f"the most pictures at once (default {DEFAULT_CEILING}); below it, the batch finds how many "
        "the server takes",
    )
    parser.add_argument("--rate", metavar="N/min", help="at most N requests per minute in all")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed picture")
    parser.add_argument("--retries", metavar="N", help="retries per picture (default: as --timeout allows)")
    parser.add_argument(
        "--manifest", metavar="PATH", help="outcome log (default: FILE.manifest.jsonl next to the pictures)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON document at the end instead of marker lines"
    )
    picture_options(parser, each=", for every job", defaults=False)
    connection_options(parser)
    history_option(parser)
    return parser


@contextlib.contextmanager
def _job_file(name: str, stdin: TextIO | None) -> Iterator[tuple[Path, Path]]:
    """The job file and the folder its relative paths start from; stdin is spooled to a temporary file (on
    disk, not in memory) so it can be read twice."""
    if name != "-":
        path = Path(name).expanduser()
        if not path.is_file():
            raise UsageError(f"batch file {name} does not exist or is not a file", "check the path")
        yield path, path.resolve().parent
        return
    fix = "pipe the jobs in as UTF-8 text, one per line, or give the job file's path"
    if stdin is None:
        raise UsageError("stdin is closed: there are no jobs to read", fix)
    try:
        holder = tempfile.TemporaryDirectory(prefix="image-gen-stdin-")
    except OSError as exc:
        raise _spool_error(exc) from None
    with holder as folder:
        path = Path(folder) / "stdin.jsonl"
        _spool(stdin, path, fix)
        yield path, Path.cwd()


def _spool(stdin: TextIO, path: Path, fix: str) -> None:
    """Copy the jobs on stdin to `path`, refusing (before any request) more than MAX_STDIN_CHARS."""
    copied = 0
    try:
        with path.open("w", encoding="utf-8") as spool:
            while piece := _read(stdin, fix):
                copied += len(piece)
                if copied > MAX_STDIN_CHARS:
                    raise UsageError(
                        f"the jobs on stdin are more than {MAX_STDIN_CHARS:,} characters",
                        "write them to a file and give its path (a job file has no such limit)",
                    )
                spool.write(piece)
    except UnicodeError:  # not UTF-8 (read strictly, or kept as surrogates that cannot be written)
        raise UsageError("the jobs on stdin are not UTF-8 text", fix) from None
    except OSError as exc:
        raise _spool_error(exc) from None


def _read(stdin: TextIO, fix: str) -> str:
    try:
        return stdin.read(1 << 16)
    except OSError as exc:  # stdin is a folder, or a device that fails
        raise UsageError(f"cannot read the jobs on stdin ({exc.strerror or exc})", fix) from None


def _spool_error(exc: OSError) -> OutputError:
    return OutputError(
        f"cannot keep the jobs on stdin in a temporary file ({exc.strerror or exc})",
        "free some space in the temporary folder (TMPDIR), or give the job file's path",
    )


def _lines(path: Path) -> Iterator[str]:
    """The job file's lines, streamed; a line longer than any job can be is refused, not read whole."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS + 1), ""), start=1):
                if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                    raise UsageError(
                        f"line {number} of batch file {path} is longer than {MAX_LINE_CHARS} characters",
                        "one job per line: a prompt, or a JSON object",
                    )
                yield line
    except UnicodeDecodeError:
        raise UsageError(f"batch file {path} is not UTF-8 text", "save it as UTF-8") from None


def run_batch_command(
    argv: Sequence[str], console: Console, stdin: TextIO | None, env: Mapping[str, str]
) -> int:
    console.json = "--json" in argv
    args = batch_parser(console.prog).parse_args(argv)
    console.verbose = args.verbose
    settings = settings_from(args, env)
    console.hide(settings.api_key)
    options, defaults = _options(args), _defaults(args)
    lines = _Lines(console, args.json)
    with _job_file(args.file, stdin) as (path, base):
        try:
            run = run_batch(
                lambda: _lines(path),
                settings,
                options,
                name="stdin" if args.file == "-" else path.name,
                base=base,
                defaults=defaults,
                cache=ServerCache(cache_dir(env)),
                warn=console.warn if console.verbose else (lambda _line: None),
                info=console.info,
                on_saved=lines.saved,
                on_job=lines.job,
                on_start=lines.start,
                notice=console.warn,
                source=None if args.file == "-" else path,
            )
        except (KeyboardInterrupt, Terminated) as exc:
            _interrupted(console, lines.progress)
            return 143 if isinstance(exc, Terminated) else 130
        finally:
            lines.close()
    _report(console, run)
    if args.json:
        console.document(_document(run, lines.pictures))
    return int(run.outcome.exit_code)


def _options(args: argparse.Namespace) -> BatchOptions:
    try:
        per_minute = parse_rate(args.rate) if args.rate else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return BatchOptions(
        concurrency=whole(args.concurrency, "--concurrency", 1, MAX_CEILING) or 1,
        per_minute=per_minute,
        fail_fast=args.fail_fast,
        max_retries=whole(args.retries, "--retries", 0, MAX_RETRIES),
        manifest=Path(args.manifest).expanduser() if args.manifest else None,
    )


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The picture options given on the command line: every job's, unless its line says otherwise."""
    return {
        "image": args.image or None,
        "size": args.size,
        "resolution": args.resolution,
        "aspect_ratio": args.aspect_ratio,
        "count": whole(args.count, "--count", 1, MAX_COUNT),
    }


class _Lines:
    """What the batch says while it runs: a marker per picture (or, with --json, the document's
    entries), and the progress bar on stderr from the moment the jobs are counted."""

    def __init__(self, console: Console, as_json: bool) -> None:
        self.console, self.as_json = console, as_json
        self.progress: BatchProgress | None = None
        self.pictures: list[dict[str, Any]] = []  # for --json: every picture of the jobs, new or not

    def start(self, _jobs: int, pictures: int) -> None:
        console = self.console
        tty = console.stderr.isatty()
        self.progress = BatchProgress(pictures, console.say, console.stderr, tty=tty, out=console.stdout)
        console.write_err, console.write_out = self.progress.writer, self.progress.out_writer

    def saved(self, saved: SavedImage) -> None:
        assert self.progress is not None
        self.progress.picture(True)
        if self.as_json:
            self.pictures.append({**saved.as_json(), "new": True})
        else:
            self.console.result(marker(saved.path))

    def job(self, job: Job) -> None:
        """A finished job: its pictures from earlier runs are results too (a rerun lists every path)."""
        assert self.progress is not None
        if job.done:
            self.progress.picture(True, len(job.done))
        for path in job.done:
            if self.as_json:
                self.pictures.append({"path": path, "new": False})
            else:
                self.console.result(marker(Path(path)))
        if not job.ok and not job.cancelled:
            self.progress.picture(False, job.count - len(job.done) - len(job.saved))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        self.console.write_err = self.console.write_out = None


def _interrupted(console: Console, progress: BatchProgress | None) -> None:
    done = f"{progress.done - progress.failed} of {progress.total} picture(s) are done; " if progress else ""
    console.say(
        f"interrupted: {done}run the same command again to resume (the rest is cancelled, "
        "nothing partial was left behind)"
    )


def _report(console: Console, run: BatchRun) -> None:
    """The summary on stderr, then what stopped the run and the failed jobs, one line each."""
    outcome, manifest = run.outcome, run.manifest
    real = [(label, error) for label, error in outcome.failed if not isinstance(error, NotAttempted)]
    skipped = f" ({outcome.skipped} already done before)" if outcome.skipped else ""
    untried = len(outcome.failed) - len(real)
    stopped = f", {untried} not attempted (the batch stopped early; rerun it to resume)" if untried else ""
    slowed = f"; capacity: {run.capacity}" if run.capacity and outcome.pictures else ""
    if run.slowdowns:
        slowed += f"; concurrency lowered {run.slowdowns} time(s)"
    if run.pauses:
        slowed += f"; paused {run.pauses} time(s) as the server asked"
    console.say(
        f"batch: {outcome.succeeded} of {outcome.total} job(s) done{skipped}, {len(real)} failed{stopped}; "
        f"{outcome.pictures} picture(s) saved in {outcome.seconds:.0f} s{slowed}; manifest {manifest}"
    )
    if outcome.error is not None:
        console.error(outcome.error)
    for label, error in real[:LISTED_FAILURES]:
        console.say(f"failed: {label}: {error}")
    if len(real) > LISTED_FAILURES:
        console.say(f"… and {len(real) - LISTED_FAILURES} more failures: see the manifest")


def _document(run: BatchRun, pictures: list[dict[str, Any]]) -> dict[str, Any]:
    outcome = run.outcome
    return {
        "ok": not outcome.failed,
        "exit_code": int(outcome.exit_code),
        "jobs": {
            "total": outcome.total,
            "ok": outcome.succeeded,
            "skipped": outcome.skipped,
            "failed": len(outcome.failed),
        },
        "images": pictures,
        "failures": [{"job": label, **error.as_json()} for label, error in outcome.failed],
        "manifest": str(run.manifest),
        "capacity": run.capacity,
        "seconds": round(outcome.seconds, 3),
    }
