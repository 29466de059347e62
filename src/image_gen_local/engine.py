"""One command's work: check everything, ask the server, survive its moods, deliver exactly what was asked.

`Generator.run` either saves every picture or says exactly why not. All input is checked before the first
request; every request is retried inside one deadline; every answer is decoded, measured and fitted to
the requested geometry before an atomic save.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files, geometry, images, naming, protocol
from .config import Settings
from .errors import ExitCode, ImageGenError, ServerError, UsageError
from .failures import Failure, Kind, classify, looks_like_html
from .images import InputImage, Picture
from .progress import HEARTBEAT_SECONDS, Heartbeat
from .protocol import CHAT, CLIPROXYAPI, IMAGES, Call
from .responses import AnswerError, UnsafeSource, all_sources, decode_source, parse_answer
from .retry import RetryPolicy, attempt_timeout, backoff
from .servers import ServerCache, ServerInfo, detect_kind, model_ids, other_tier
from .throttle import Throttle

if TYPE_CHECKING:
    from .transport import HttpAnswer, Transport

MAX_PROMPT_CHARS = 32_000
PAUSE_ALL_AFTER = 2.0  # a stated wait this long means quota or capacity is gone for everyone, not a blip
MAX_COUNT = 100
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ImageRequest:
    """What the user asked for."""

    prompt: str
    images: tuple[Path, ...] = ()
    size: tuple[int, int] | None = None
    resolution: str = "1K"
    aspect_ratio: geometry.Ratio | None = None
    count: int = 1
    output: Path | None = None


@dataclass
class SavedImage:
    """One delivered picture and how it came to be."""

    path: Path
    width: int
    height: int
    mime: str
    model: str
    route: str
    seconds: float
    retries: int
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "mime": self.mime,
            "model": self.model,
            "route": self.route,
            "seconds": round(self.seconds, 3),
            "retries": self.retries,
            "warnings": self.warnings,
        }


@dataclass
class Result:
    images: list[SavedImage] = field(default_factory=list)
    errors: list[ImageGenError] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return self.errors[0].exit_code if self.errors else ExitCode.OK


@dataclass(frozen=True)
class Prepared:
    """A request after every local check: inputs loaded, geometry planned, output place known."""

    request: ImageRequest
    prompt: str
    inputs: tuple[InputImage, ...]
    plan: geometry.Plan
    output_dir: Path
    output: Path | None


def check_prompt(prompt: str) -> str:
    text = prompt.strip()
    if not text:
        raise UsageError("the prompt is empty", "describe the picture, e.g. 'a cute cat, cartoon style'")
    if "\x00" in text:
        raise UsageError("the prompt contains a NUL character", "remove it")
    if len(text) > MAX_PROMPT_CHARS:
        raise UsageError(
            f"the prompt is {len(text)} characters, above the limit of {MAX_PROMPT_CHARS}", "shorten it"
        )
    return text


def check_request(request: ImageRequest) -> str:
    """The checks that need neither the server nor the files (a batch runs them on every line first).

    Returns the cleaned prompt; raises UsageError.
    """
    prompt = check_prompt(request.prompt)
    if not 1 <= request.count <= MAX_COUNT:
        raise UsageError(f"--count {request.count} is out of range", f"use 1 to {MAX_COUNT}")
    if request.output is not None and request.count > 1:
        raise UsageError("--output names one file but --count asks for several", "drop --output or --count")
    if len(request.images) > images.MAX_INPUTS:
        raise UsageError(
            f"{len(request.images)} --image files given; the model takes at most {images.MAX_INPUTS}",
            "drop some",
        )
    if request.size is not None:
        try:
            geometry.plan(size=request.size)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return prompt


def prepare(request: ImageRequest, settings: Settings, check_output: bool = True) -> Prepared:
    """Every check that needs no server. Raises ImageGenError; touches nothing but the output folder.

    `check_output=False` when the caller already checked the output folder (a batch checks it once).
    """
    prompt = check_request(request)
    inputs = tuple(images.load_input(Path(p).expanduser()) for p in request.images)
    ratio = request.aspect_ratio
    if ratio is None and inputs:
        ratio = geometry.snap_ratio(geometry.Ratio.of(*inputs[0].original_size))
    try:
        plan = geometry.plan(ratio, request.resolution, request.size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if request.output is not None:
        output = files.check_new_file(request.output)
        output_dir = output.parent
    elif check_output:
        output, output_dir = None, files.prepare_dir(settings.output_dir)
    else:
        output, output_dir = None, settings.output_dir.expanduser().resolve()
    return Prepared(request, prompt, inputs, plan, output_dir, output)


def _quiet(_message: str) -> None:
    pass


class Generator:
    """Runs prepared requests against one server, keeping the connection and what we learned of it."""

    def __init__(
        self,
        settings: Settings,
        *,
        warn: Callable[[str], None],
        info: Callable[[str], None] | None = None,
        cache: ServerCache | None = None,
        policy: RetryPolicy | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        throttle: Throttle | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.settings = settings
        self.warn = warn
        self.info = info or (lambda _message: None)
        self.cache = cache
        self.policy = policy or RetryPolicy()
        self.heartbeat = heartbeat
        self.throttle = throttle or Throttle(1)
        self.stop_on: set[ExitCode] = set()  # failures that end the whole run (set by the batch engine)
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self.rng = rng or random.Random()
        self.clock = clock
        self._transport: Transport | None = None
        self._server: ServerInfo | None = None
        self.model = settings.model

    # --- the server ----------------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        with self._lock:  # workers share one connection pool
            if self._transport is None:
                from .transport import Transport  # the SDK import is slow; --help and usage errors skip it

                self._transport = Transport(self.settings.base_url, self.settings.api_key)
            return self._transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def server_kind(self, deadline: float, probe: bool = True) -> str:
        """Cached, else learned from /v1/models; an unknown server is treated as Antigravity."""
        with self._probe_lock:  # workers starting together ask once
            if self._server is None and self.cache is not None:
                self._server = self.cache.get(self.settings.base_url)
            if self._server is None and probe:
                self._server = self.probe(min(PROBE_TIMEOUT, max(0.1, deadline - time.monotonic())))
            return self._server.kind if self._server else protocol.ANTIGRAVITY

    def probe(self, timeout: float) -> ServerInfo | None:
        from .responses import parse_json
        from .transport import TransportFailure

        try:
            answer = self.transport.get("/models", timeout)
            if answer.status != 200:
                return None
            data = parse_json(answer.body)
        except (TransportFailure, AnswerError):
            return None
        server = ServerInfo(detect_kind(self.settings.base_url, data), model_ids(data), time.time())
        self.info(
            f"server at {self.settings.base_url} looks like {server.kind} ({len(server.models)} models)"
        )
        if self.cache is not None:
            self.cache.put(self.settings.base_url, server)
        return server

    def _learn_kind(self, kind: str) -> None:
        self._server = ServerInfo(kind, self._server.models if self._server else [], time.time())
        if self.cache is not None:
            self.cache.put(self.settings.base_url, self._server)

    def routes(self, kind: str) -> list[str]:
        if self.settings.route != "auto":
            return [self.settings.route]
        return [CHAT] if kind == CLIPROXYAPI else [IMAGES, CHAT]

    # --- dry run ------------------------------------------------------------------------------------------

    def dry_run(self, prepared: Prepared) -> list[dict[str, Any]]:
        """The requests a real run would send first, without sending anything (not even the probe)."""
        kind = self.server_kind(0, probe=False)
        route = self.routes(kind)[0]
        call = protocol.build_call(route, kind, prepared.prompt, self.model, prepared.plan, prepared.inputs)
        described = call.describe(self.settings.base_url, bool(self.settings.api_key))
        return [described] * prepared.request.count

    # --- the real thing -----------------------------------------------------------------------------------

    def run(self, prepared: Prepared, on_saved: Callable[[SavedImage], None] | None = None) -> Result:
        """All pictures of one request, within one deadline, through the batch engine (for -n); as many at
        once as this generator's throttle allows."""
        from .batch import BatchOptions, Job, run_jobs

        deadline = time.monotonic() + self.settings.timeout
        options = BatchOptions(concurrency=self.throttle.concurrency, deadline=deadline, stop_on={*_STOP_ALL})
        with Heartbeat(self.warn, self.heartbeat) as beat:
            outcome = run_jobs(self, [Job(prepared=prepared)], options, on_saved=on_saved, status=beat.set)
        [job] = outcome.jobs
        errors = job.errors
        if not errors and len(job.saved) < prepared.request.count:
            from .batch import NotAttempted

            errors = [NotAttempted("the run stopped before every picture was made", "run it again")]
        result = Result(job.saved, errors)
        missing = prepared.request.count - len(job.saved) - len(job.errors)
        if missing > 0 and job.errors:
            self.warn(f"{missing} more picture(s) not attempted after: {job.errors[-1]}")
        return result

    def picture(
        self, prepared: Prepared, index: int, deadline: float, status: Callable[[str], None] = _quiet
    ) -> SavedImage:
        """One picture: ask, retry inside the deadline, switch route or model when told, verify, save.

        Each attempt holds one throttle slot. It is given back as soon as a verified picture is in (the
        server gets its next request while this one is saved); on a failure only once the failure is
        judged, so a failure that ends the run cancels the throttle before any other request can start.
        """
        started = time.monotonic()
        kind = self.server_kind(deadline)
        routes = self.routes(kind)
        route_index = 0
        attempts = no_image = 0
        warnings: list[str] = []
        last: Failure | None = None
        label = f"picture {index + 1} of {prepared.request.count}"
        while True:
            if not self.throttle.acquire(deadline):
                raise _deadline_error(self.settings.timeout, last)
            model = self.model  # other workers may switch it meanwhile; this attempt keeps its own
            route = routes[route_index]
            held = True
            try:
                call = protocol.build_call(
                    route, kind, prepared.prompt, model, prepared.plan, prepared.inputs
                )
                attempts += 1
                status(f"{label}: attempt {attempts} via {call.path}")
                self.info(f"attempt {attempts}: POST {call.path} model={model}")
                outcome = self._attempt(call, attempt_timeout(deadline - time.monotonic()))
                if isinstance(outcome, Picture):
                    self.throttle.release(ok=True)
                    held = False
                    return self._deliver(prepared, outcome, model, route, started, attempts - 1, warnings)
                failure = last = outcome
                if failure.kind is Kind.ROUTE and route_index + 1 < len(routes):
                    route_index += 1
                    if failure.status == 400:  # CLIProxyAPI: its images API does not serve Gemini models
                        self._learn_kind(CLIPROXYAPI)
                        kind = CLIPROXYAPI
                    self.warn(
                        f"{call.path} is not available here ({failure.detail}); using /chat/completions"
                    )
                    continue
                if failure.kind is Kind.MODEL and self._fall_back(model, failure, warnings):
                    continue
                if failure.kind in (Kind.NO_IMAGE, Kind.BAD_ANSWER):
                    no_image += 1
                wait = backoff(self.policy, failure, attempts, self.rng)
                retries_left = self.policy.max_retries is None or attempts <= self.policy.max_retries
                if (
                    not failure.retryable
                    or no_image > self.policy.no_image_retries
                    or time.monotonic() + wait >= deadline
                    or not retries_left
                ):
                    if failure.exit_code in self.stop_on:
                        self.throttle.cancel()
                    detail = failure.detail
                    if failure.retryable and no_image <= self.policy.no_image_retries:
                        spent = time.monotonic() - started
                        detail += f" (still failing after {attempts} attempt(s) in {spent:.0f} s)"
                    raise ServerError(detail, failure.fix, failure.exit_code)
            finally:
                if held:
                    self.throttle.release(ok=False)
            self.info(f"attempt {attempts} failed: {failure.detail}")
            self.warn(f"{failure.detail}; retrying in {wait:.1f} s")
            status(f"{label}: waiting {wait:.0f} s to retry")
            # The whole run slows down (fewer requests at once); a long wait the server states holds back
            # every new request; a short one (Google's usual "retry in 1.2 s") only this picture.
            overloaded = _overloaded(failure)
            pause_all = overloaded and failure.retry_after is not None and wait >= PAUSE_ALL_AFTER
            if overloaded:
                self.throttle.slow_down(wait, stated=pause_all)
            if not pause_all:  # a pause for all is enforced by the throttle
                self.throttle.sleep(wait)

    def _fall_back(self, model: str, failure: Failure, warnings: list[str]) -> bool:
        """Switch to the other tier once for the whole run; False when that was already tried."""
        other = other_tier(model)
        with self._lock:
            if self.model != model:
                return True  # another worker switched already: retry with its choice
            if other is None or self.model != self.settings.model:
                return False  # nothing to switch to, or the other tier failed too
            self.model = other
        note = f"model {model} is unavailable ({failure.detail}); trying {other} instead"
        self.warn(note)
        warnings.append(note)
        return True

    def _attempt(self, call: Call, timeout: float) -> Picture | Failure:
        from .transport import TransportFailure

        try:
            answer = self.transport.send(call, timeout)
            outcome = self._read(answer, timeout)
        except TransportFailure as exc:
            outcome = exc.failure
        key = self.settings.api_key
        if isinstance(outcome, Failure) and key and key in outcome.detail:  # a server may echo the key back
            outcome = dataclasses.replace(outcome, detail=outcome.detail.replace(key, "***"))
        return outcome

    def _read(self, answer: HttpAnswer, timeout: float) -> Picture | Failure:
        """Turn an HTTP answer into a verified picture or a classified failure.

        Each stage is released as soon as the next exists (raw body, parsed answer, base64 text), so a 4K
        answer is held about twice at most, not five times.
        """
        if answer.status != 200:
            return classify(answer.status, answer.text, answer.headers)
        head = bytes(answer.body[:300]).decode("utf-8", "replace")
        if "html" in answer.content_type or looks_like_html(head):
            return Failure(
                Kind.NOT_IMAGE_API, "the server answered with an HTML page, not the image API", 200
            )
        try:
            text = answer.body.decode("utf-8")
        except UnicodeDecodeError:
            return Failure(Kind.BAD_ANSWER, "the server's answer is not UTF-8 text", 200)
        finally:
            answer.body = b""
        try:
            parsed = parse_answer(text, streamed="event-stream" in answer.content_type)
        except AnswerError as exc:
            return Failure(Kind.BAD_ANSWER, str(exc), 200)
        del text
        if parsed.error:
            return classify(200, parsed.error)
        sources = all_sources(parsed)
        if not sources:
            words = " ".join(parsed.text.split())[:160]
            if parsed.refused:
                detail = f"the server refused ({parsed.finish_reason})" + (f": {words}" if words else "")
                return Failure(Kind.SAFETY, detail, 200)
            detail = (
                f"the server answered without a picture: {words!r}" if words else "the answer held no picture"
            )
            return Failure(Kind.NO_IMAGE, detail, 200)
        source = sources[-1]  # chat answers may carry draft "thought" pictures first
        del sources, parsed
        try:
            data = decode_source(source)
            if data is None:
                data = self.transport.download(source, timeout)
            del source
            return images.read_picture(data)
        except (UnsafeSource, images.PictureRefused) as exc:
            return Failure(Kind.HOSTILE, str(exc), 200)
        except ValueError as exc:
            return Failure(Kind.BAD_ANSWER, str(exc), 200)

    def _deliver(
        self,
        prepared: Prepared,
        picture: Picture,
        model: str,
        route: str,
        started: float,
        retries: int,
        warnings: list[str],
    ) -> SavedImage:
        plan = prepared.plan
        for note in geometry_warnings(plan, picture.size):
            self.warn(note)
            warnings.append(note)
        box, resize = geometry.fit(picture.size, plan)
        final = images.transform(picture, box, resize)
        self.throttle.check()  # the run was interrupted: start no new file
        if prepared.output is not None:
            wanted = images.FORMAT_BY_EXT.get(prepared.output.suffix.lower())
            if wanted:
                final = images.convert(final, wanted)
            elif prepared.output.suffix.lower() != f".{final.ext}":
                note = f"{prepared.output.name} holds a {final.format} picture (.{final.ext})"
                self.warn(note)
                warnings.append(note)
            path = files.save_exact(final.data, prepared.output)
        else:
            stem = naming.picture_stem(prepared.prompt, self.clock())
            path = files.save_new(final.data, prepared.output_dir, stem, final.ext)
        return SavedImage(
            path,
            final.width,
            final.height,
            final.mime,
            model,
            route,
            time.monotonic() - started,
            retries,
            warnings,
        )


# With -n, these also stop the other pictures of the command: the server is unusable (see the batch's
# SERVER_UNUSABLE), the one deadline is over, or the input pictures they all share are refused.
_STOP_ALL = {ExitCode.UNREACHABLE, ExitCode.AUTH, ExitCode.OUTPUT, ExitCode.DEADLINE, ExitCode.BAD_INPUT}


def _overloaded(failure: Failure) -> bool:
    """The server says it is too busy (as opposed to a flaky connection): the whole run should slow down."""
    return failure.kind is Kind.RATE_LIMIT or (failure.kind is Kind.CAPACITY and failure.status == 503)


def _deadline_error(timeout: float, last: Failure | None) -> ServerError:
    after = f"; last problem: {last.detail}" if last else ""
    if last is not None and last.kind in (Kind.RATE_LIMIT, Kind.CAPACITY, Kind.MODEL):
        return ServerError(f"no picture within --timeout {timeout:.0f} s{after}", last.fix, ExitCode.QUOTA)
    return ServerError(
        f"no picture within --timeout {timeout:.0f} s{after}",
        "the server is slow (4K can take minutes): raise --timeout",
        ExitCode.DEADLINE,
    )


def geometry_warnings(plan: geometry.Plan, actual: tuple[int, int]) -> list[str]:
    """Say when the server ignored the ratio or tier we asked for (pure)."""
    notes: list[str] = []
    expected = plan.expected_size
    asked = plan.request_ratio
    w, h = actual
    if not geometry.has_ratio(actual, asked):
        notes.append(
            f"the server ignored aspect ratio {asked} and sent {w}x{h} ({geometry.describe_ratio(actual)}); "
            f"cropped locally to {plan.target_ratio}"
        )
    elif geometry.tier_of(actual, asked) != plan.tier:
        notes.append(
            f"the server ignored resolution {plan.tier} ({expected[0]}x{expected[1]}) and sent {w}x{h}"
        )
    if plan.final_size:
        cw, ch = geometry.cropped_size(actual, plan.target_ratio)
        if cw < plan.final_size[0] or ch < plan.final_size[1]:
            notes.append(
                f"upscaled {cw}x{ch} to {plan.final_size[0]}x{plan.final_size[1]}: the server sent less"
            )
    return notes


def generate(
    prompt: str,
    *,
    images: tuple[str | Path, ...] | list[str | Path] = (),
    size: str | None = None,
    resolution: str = "1k",
    aspect_ratio: str | None = None,
    count: int = 1,
    output: str | Path | None = None,
    settings: Settings | None = None,
    warn: Callable[[str], None] | None = None,
) -> Result:
    """Generate from Python with the CLI's options as strings; errors raise ImageGenError."""
    try:
        request = ImageRequest(
            prompt=prompt,
            images=tuple(Path(p) for p in images),
            size=geometry.parse_size(size) if size else None,
            resolution=geometry.parse_tier(resolution),
            aspect_ratio=geometry.parse_ratio(aspect_ratio) if aspect_ratio else None,
            count=count,
            output=Path(output) if output else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = settings or Settings()
    prepared = prepare(request, settings)
    generator = Generator(settings, warn=warn or (lambda _message: None))
    try:
        return generator.run(prepared)
    finally:
        generator.close()
