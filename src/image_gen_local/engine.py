"""One picture: ask the server, survive its moods, deliver exactly what was asked.

`Generator.picture` asks by the right route for the server's kind, retries inside one deadline as
`retry.decide` says (switching route or model when told), verifies the answer (`answers.read_answer`), fits
it to the requested geometry and saves it atomically. Many pictures, the `-n` path included, are the batch
engine's job: it calls `picture` from its workers, all sharing this generator's connection and throttle.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import protocol
from .answers import answer_cap, answer_pixels, read_answer
from .config import Settings
from .delivery import Delivery
from .errors import ExitCode, ServerError
from .failures import Failure, Kind
from .limiter import Verdict
from .provenance import public_url
from .request import Prepared, SavedImage
from .retry import (
    Action,
    RetryPolicy,
    attempt_timeout,
    backoff,
    counts_as_no_image,
    crowded,
    decide,
    overloaded,
    rate_cap_wait,
    same_failure,
)
from .servers import Discovery, ServerCache, check_model, other_tier
from .throttle import Throttle
from .upstream import CLIPROXYAPI, EMULATOR_HEADER, SYNTHETIC_NOTE, UNKNOWN

if TYPE_CHECKING:
    from .images import Picture
    from .protocol import Call
    from .transport import Transport


def _quiet(_message: str) -> None:
    pass


def _never(_code: ExitCode) -> bool:
    return False


class Generator:
    """Makes pictures on one server, keeping the connection and what we learned of it."""

    def __init__(
        self,
        settings: Settings,
        *,
        warn: Callable[[str], None],
        info: Callable[[str], None] | None = None,
        cache: ServerCache | None = None,
        policy: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = datetime.now,
        alert: Callable[[str], None] | None = None,
    ) -> None:
        """`warn` gets what a picture's warnings say; `alert` (by default `warn`) what must be said even
        when those are quiet (a batch without -v): a history that cannot be written."""
        self.settings = settings
        self.warn = warn
        self.info = info or _quiet
        self.policy = policy or RetryPolicy()
        self.throttle = throttle or Throttle(1)
        self.rng = rng or random.Random()
        self.clock = clock
        self.model = settings.model  # may switch to the other tier once, for every worker
        self.server = Discovery(settings.base_url, lambda: self.transport, cache, self.info)
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self.synthetic = False  # the server turned out to be the emulator: every picture says so
        self._said_synthetic = False
        self._model_checked = False
        self._model_note: str | None = None
        self.delivery = Delivery(settings, warn, alert or warn, clock, self.throttle.saving)

    @property
    def transport(self) -> Transport:
        with self._lock:  # workers share one connection pool
            if self._transport is None:
                from .transport import Transport  # the SDK import is slow; --help and usage errors skip it

                self._transport = Transport(self.settings.base_url, self.settings.api_key)
            return self._transport

    def close(self) -> None:
        self.delivery.close()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """From another thread: no new request, no new file, and the request in flight ends now."""
        self.throttle.interrupt()
        with self._lock:
            transport = self._transport
        if transport is not None:
            transport.abort()

    def routes(self, kind: str, model: str, has_inputs: bool) -> list[str]:
        if self.settings.route != "auto":
            return [self.settings.route]
        routes, why = protocol.routes_for(kind, model, has_inputs)
        self.info(f"routes {' then '.join(routes)} ({kind} server): {why}")
        return routes

    def check_model(self) -> None:
        """Before the first request: is the model on offer? Once for all workers; raises UsageError."""
        with self._lock:
            if self._model_checked:
                return
            model, note = check_model(self.model, self.server.server)
            self._model_checked = True
            if note:
                self.model, self._model_note = model, note
                self.warn(note)

    def dry_run(self, prepared: Prepared) -> list[dict[str, Any]]:
        """The requests a real run would send first, without sending anything (not even the probe)."""
        kind = self.server.kind(0, probe=False)
        route = self.routes(kind, self.model, bool(prepared.inputs))[0]
        call = protocol.build_call(route, kind, prepared.prompt, self.model, prepared.plan, prepared.inputs)
        described = call.describe(self.settings.base_url, bool(self.settings.api_key))
        return [described] * prepared.request.count

    def picture(
        self,
        prepared: Prepared,
        index: int,
        deadline: float,
        status: Callable[[str], None] = _quiet,
        ends_run: Callable[[ExitCode], bool] = _never,
        name: str = "",
    ) -> SavedImage:
        """One picture: ask, retry inside the deadline, switch route or model when told, verify, save.

        Each attempt holds one throttle slot. It is given back as soon as a verified picture is in (the
        server gets its next request while this one is saved); on a failure only once the failure is
        judged, so a failure that `ends_run` cancels the throttle before any other request can start.
        """
        started = time.monotonic()
        kind = self.server.kind(deadline)
        self.check_model()
        routes = self.routes(kind, self.model, bool(prepared.inputs))
        route_index = attempts = no_image = repeats = crowded_attempts = 0
        warnings: list[str] = [self._model_note] if self._model_note else []
        starts: list[float] = []  # attempt start times: the per-minute cap holds whatever the server says
        last: Failure | None = None
        label = f"{name + ', ' if name else ''}picture {index + 1} of {prepared.request.count}"
        while True:
            slot = self.throttle.acquire(deadline, prepared.plan.tier)
            if slot is None:
                raise _deadline_error(self.settings.timeout, last)
            model = self.model  # other workers may switch it meanwhile; this attempt keeps its own
            if self.server.kind(deadline) != kind:  # learned again: ask this kind the way it understands
                kind = self.server.kind(deadline)
                routes, route_index = self.routes(kind, model, bool(prepared.inputs)), 0
            route = routes[route_index]
            held, verdict, too_many, event = True, Verdict.OTHER, False, 0.0
            try:
                call = protocol.build_call(
                    route, kind, prepared.prompt, model, prepared.plan, prepared.inputs
                )
                left = deadline - time.monotonic()
                if left <= 0:  # never hand the socket a negative timeout
                    raise _deadline_error(self.settings.timeout, last)
                attempts += 1
                starts.append(time.monotonic())
                status(f"{label}: attempt {attempts} via {call.path}")
                self.info(f"attempt {attempts}: POST {call.path} model={model}; {call.note()}")
                tier = prepared.plan.tier
                outcome, waited = self._attempt(
                    call, attempt_timeout(left), answer_cap(tier), answer_pixels(tier), deadline
                )
                if not isinstance(outcome, Failure):
                    self.throttle.release(slot, Verdict.HEALTHY, seconds=waited)
                    held = False
                    synthetic = self._synthetic(outcome, warnings)
                    saved = self.delivery.deliver(
                        prepared, index, outcome, call, started, attempts - 1, warnings, synthetic
                    )
                    if any("ignored aspect ratio" in w for w in saved.warnings) and kind != UNKNOWN:
                        self.server.recheck(deadline, f"a {kind} server ignored the ratio asked for")
                    return saved
                repeats = repeats + 1 if same_failure(last, outcome) else 1
                failure = last = outcome
                no_image += counts_as_no_image(failure)
                # Refused for too many in flight: fewer at once (the throttle), and this picture waits
                # only for a free slot; it does not count towards the backoff of real failures.
                too_many = crowded(failure, self.throttle.load(slot))
                crowded_attempts += too_many
                wait = rate_cap_wait(starts, time.monotonic())
                if not too_many:
                    pause = backoff(self.policy, failure, attempts - crowded_attempts, self.rng)
                    busy = self.throttle.busy_wait() if overloaded(failure) else None
                    if busy is not None and failure.retry_after is None:  # others hold every place
                        pause = min(pause, busy)
                    wait = max(wait, pause)
                decision = decide(
                    failure,
                    attempts=attempts,
                    no_image=no_image,
                    wait=wait,
                    time_left=deadline - time.monotonic(),
                    routes_left=len(routes) - route_index - 1,
                    policy=self.policy,
                    repeats=repeats,
                )
                verdict = Verdict.OVERLOADED if decision.slow_down else Verdict.OTHER
                event = decision.wait
                missing = failure.kind is Kind.ROUTE and failure.status == 404 and kind != UNKNOWN
                if missing and self.server.recheck(deadline, f"{call.path} is missing on a {kind} server"):
                    continue  # another kind now listens there: the loop asks it its own way
                if decision.action is Action.SWITCH_ROUTE:
                    route_index += 1
                    if failure.status == 400:  # CLIProxyAPI: its images API does not serve Gemini models
                        self.server.learn(CLIPROXYAPI)
                        kind = CLIPROXYAPI
                    self.warn(
                        f"{call.path} is not available here ({failure.detail}); using /chat/completions"
                    )
                    continue
                if decision.action is Action.OTHER_MODEL and self._fall_back(model, failure, warnings):
                    continue
                if decision.action is not Action.RETRY:
                    if ends_run(failure.exit_code):
                        self.throttle.cancel()
                    raise _stop_error(
                        failure, decision.gave_up, attempts, time.monotonic() - started, decision.note
                    )
            finally:
                if held:
                    self.throttle.release(slot, verdict, crowded=too_many, wait=event)
            self.info(f"attempt {attempts} failed: {failure.detail}")
            if too_many:
                self.info(f"{label}: refused with others in flight; retrying with fewer at once")
            else:
                self.warn(f"{failure.detail}; retrying in {decision.wait:.1f} s")
            status(f"{label}: waiting {decision.wait:.0f} s to retry")
            # A long wait the server states holds back every new request; a short one (Google's usual
            # "retry in 1.2 s") only this picture.
            if decision.pause_all:
                self.throttle.pause(decision.wait)
            elif decision.wait > 0:  # a pause for all is enforced by the throttle
                self.throttle.sleep(decision.wait)

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

    def _attempt(
        self, call: Call, timeout: float, cap: int, pixels: int, deadline: float
    ) -> tuple[Picture | Failure, float]:
        """One request and its answer, all within `timeout` (the download included), and how long the
        server took (our own decoding left out, so the throttle reads the server's pace, not our CPU's);
        the key is already scrubbed from any failure's words by the transport and `read_answer`."""
        from .transport import TransportFailure

        sent = time.monotonic()
        ends = sent + timeout
        try:
            answer = self.transport.send(call, timeout, cap)
            waited = time.monotonic() - sent
            self.synthetic = self.synthetic or EMULATOR_HEADER.lower() in answer.headers
            contradiction = self.server.contradicted_by(answer.headers)
            if contradiction:
                self.server.recheck(deadline, contradiction)
            picture = read_answer(
                answer, lambda url: self.transport.download(url, ends - time.monotonic()), pixels
            )
            return picture, waited
        except TransportFailure as exc:
            return exc.failure, time.monotonic() - sent

    def _synthetic(self, picture: Picture, warnings: list[str]) -> bool:
        """Is this picture the emulator's (its header, or its own label through a gateway)? Said once."""
        if not (self.synthetic or picture.synthetic):
            return False
        note = f"the server at {public_url(self.settings.base_url)} {SYNTHETIC_NOTE}"
        warnings.append(note)
        with self._lock:
            said, self._said_synthetic = self._said_synthetic, True
        if not said:
            self.warn(note)
        return True


def _stop_error(failure: Failure, gave_up: bool, attempts: int, spent: float, note: str = "") -> ServerError:
    detail = failure.detail
    if gave_up:
        detail += f" (still failing after {attempts} attempt(s) in {spent:.0f} s)"
    if note:
        detail += f"; {note}"
    return ServerError(detail, failure.fix, failure.exit_code)


def _deadline_error(timeout: float, last: Failure | None) -> ServerError:
    after = f"; last problem: {last.detail}" if last else ""
    if last is not None and last.kind in (Kind.RATE_LIMIT, Kind.CAPACITY, Kind.MODEL):
        return ServerError(f"no picture within --timeout {timeout:.0f} s{after}", last.fix, ExitCode.QUOTA)
    return ServerError(
        f"no picture within --timeout {timeout:.0f} s{after}",
        "the server is slow (4K can take minutes): raise --timeout",
        ExitCode.DEADLINE,
    )
