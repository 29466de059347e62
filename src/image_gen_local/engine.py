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
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import protocol
from .answers import answer_cap, answer_pixels, read_answer
from .config import Settings
from .delivery import Delivery
from .errors import ExitCode
from .failures import Failure, Kind
from .limiter import Verdict
from .provenance import public_url
from .request import Prepared, SavedImage
from .retry import (
    Action,
    Decision,
    RetryPolicy,
    attempt_timeout,
    backoff,
    counts_as_no_image,
    crowded,
    deadline_error,
    decide,
    overloaded,
    rate_cap_wait,
    same_failure,
    stop_error,
)
from .servers import Discovery, ServerCache, check_model, other_tier
from .throttle import Cancelled, Slot, Throttle
from .upstream import CLIPROXYAPI, EMULATOR_HEADER, SYNTHETIC_NOTE, UNKNOWN

if TYPE_CHECKING:
    from .images import Picture
    from .protocol import Call
    from .transport import Transport


def _quiet(_message: str) -> None:
    pass


def _never(_code: ExitCode) -> bool:
    return False


CUT_SHORT = 0.25  # an attempt given less than this share of --timeout was cut by the deadline, not the server


@dataclass
class _Tries:
    """One picture's attempts so far: what the next decision and the final error need."""

    kind: str  # the server's kind, as last learned
    routes: list[str]
    label: str  # how progress lines name this picture
    started: float
    route_index: int = 0
    attempts: int = 0
    no_image: int = 0  # answers without a usable picture
    repeats: int = 0  # the same failure in a row
    crowded: int = 0  # refusals for too many in flight: they do not count towards the backoff
    starts: list[float] = field(default_factory=list)  # attempt start times, for the per-minute cap
    last: Failure | None = None
    before: Failure | None = None  # the failure before `last`
    allotted: float = 0.0  # seconds the latest attempt was given
    hold_all: bool = False  # the latest failure was a refusal with nothing else of ours in flight
    warnings: list[str] = field(default_factory=list)

    @property
    def route(self) -> str:
        return self.routes[self.route_index]


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
        deadline: float | None,
        status: Callable[[str], None] = _quiet,
        ends_run: Callable[[ExitCode], bool] = _never,
        name: str = "",
    ) -> SavedImage:
        """One picture: ask, retry inside the deadline, switch route or model when told, verify, save.
        `deadline` None: --timeout from when the picture first gets a slot (a batch's pictures do not
        spend their time waiting behind each other).

        Each attempt holds one throttle slot. It is given back as soon as a verified picture is in (the
        server gets its next request while this one is saved); on a failure only once the failure is
        judged, so a failure that `ends_run` cancels the throttle before any other request can start.
        """
        kind = self.server.kind(time.monotonic() + self.settings.timeout if deadline is None else deadline)
        self.check_model()
        label = f"{name + ', ' if name else ''}picture {index + 1} of {prepared.request.count}"
        tries = _Tries(kind, self.routes(kind, self.model, bool(prepared.inputs)), label, time.monotonic())
        if self._model_note:
            tries.warnings.append(self._model_note)
        _ = self.transport  # the SDK is imported before a slot is taken: a slot held meanwhile looks accepted
        first, deadline = self._turn(deadline, prepared.plan.tier)
        tries.started = time.monotonic()  # the picture's seconds count from its first request
        while True:
            slot, first = first or self.throttle.acquire(deadline, prepared.plan.tier), None
            if slot is None:
                raise deadline_error(self.settings.timeout, tries.last)
            model = self.model  # other workers may switch it meanwhile; this attempt keeps its own
            held, verdict, too_many, event = True, Verdict.OTHER, False, 0.0
            try:
                self._relearn(tries, model, prepared, deadline)
                call = protocol.build_call(
                    tries.route, tries.kind, prepared.prompt, model, prepared.plan, prepared.inputs
                )
                outcome, waited = self._send(call, tries, prepared, deadline, status, model)
                if not isinstance(outcome, Failure):
                    self.throttle.release(slot, Verdict.HEALTHY, seconds=waited)
                    held = False
                    return self._deliver(outcome, call, tries, prepared, index, deadline)
                if self.throttle.interrupted:  # `abort` shut the socket: nothing broke, nothing retries
                    raise Cancelled
                failure = outcome
                # Refused for too many in flight: fewer at once (the throttle), and this picture waits
                # only for a free slot; it does not count towards --retries nor the backoff.
                too_many = crowded(failure, self.throttle.load(slot))
                decision = self._judge(failure, tries, too_many, deadline)
                verdict = Verdict.OVERLOADED if overloaded(failure) else Verdict.OTHER
                event = decision.wait
                if self._follow(decision, failure, call, model, tries, deadline, ends_run):
                    continue
                if decision.pause_all or tries.hold_all:  # set before the slot is free: nobody slips in
                    self.throttle.pause(decision.wait, stated=decision.pause_all)
            finally:
                if held:
                    self.throttle.release(slot, verdict, crowded=too_many, wait=event)
            self._wait(decision, failure, too_many, tries, status)

    def _turn(self, deadline: float | None, key: str) -> tuple[Slot | None, float]:
        """With no deadline yet: wait for the first slot (behind pictures already under way), and start the
        --timeout clock then."""
        if deadline is not None:
            return None, deadline
        slot = self.throttle.acquire(None, key)
        return slot, time.monotonic() + self.settings.timeout

    def _relearn(self, tries: _Tries, model: str, prepared: Prepared, deadline: float) -> None:
        """The server's kind was learned again meanwhile: ask this kind the way it understands."""
        if self.server.kind(deadline) != tries.kind:
            tries.kind = self.server.kind(deadline)
            tries.routes, tries.route_index = self.routes(tries.kind, model, bool(prepared.inputs)), 0

    def _send(
        self,
        call: Call,
        tries: _Tries,
        prepared: Prepared,
        deadline: float,
        status: Callable[[str], None],
        model: str,
    ) -> tuple[Picture | Failure, float]:
        """One attempt within what is left of the deadline (a share of it, so a hung one is retried)."""
        left = deadline - time.monotonic()
        if left <= 0:  # never hand the socket a negative timeout
            raise deadline_error(self.settings.timeout, tries.last)
        tries.attempts += 1
        tries.starts.append(time.monotonic())
        status(f"{tries.label}: attempt {tries.attempts} via {call.path}")
        self.info(f"attempt {tries.attempts}: POST {call.path} model={model}; {call.note()}")
        tier = prepared.plan.tier
        tries.allotted = attempt_timeout(left)
        return self._attempt(call, tries.allotted, answer_cap(tier), answer_pixels(tier), deadline)

    def _deliver(
        self, picture: Picture, call: Call, tries: _Tries, prepared: Prepared, index: int, deadline: float
    ) -> SavedImage:
        synthetic = self._synthetic(picture, tries.warnings)
        saved = self.delivery.deliver(
            prepared, index, picture, call, tries.started, tries.attempts - 1, tries.warnings, synthetic
        )
        if any("ignored aspect ratio" in w for w in saved.warnings) and tries.kind != UNKNOWN:
            self.server.recheck(deadline, f"a {tries.kind} server ignored the ratio asked for")
        return saved

    def _judge(self, failure: Failure, tries: _Tries, too_many: bool, deadline: float) -> Decision:
        """What to do after `failure`: the retry table's decision, with the waits this run imposes."""
        tries.repeats = tries.repeats + 1 if same_failure(tries.last, failure) else 1
        tries.before, tries.last = tries.last, failure
        tries.no_image += counts_as_no_image(failure)
        tries.crowded += too_many
        counted = tries.attempts - tries.crowded  # refusals for too many in flight are our doing
        wait = rate_cap_wait(tries.starts, time.monotonic())
        # Refused with nothing else of ours in flight and no wait stated: others' pictures (or an empty
        # quota) hold every place, so none of ours goes before this picture's wait is over.
        tries.hold_all = overloaded(failure) and failure.retry_after is None and not too_many
        if not too_many:
            pause = backoff(self.policy, failure, counted, self.rng)
            busy = self.throttle.busy_wait() if tries.hold_all else None
            wait = max(wait, pause if busy is None else min(pause, busy))
        return decide(
            failure,
            attempts=counted,
            no_image=tries.no_image,
            wait=wait,
            time_left=deadline - time.monotonic(),
            routes_left=len(tries.routes) - tries.route_index - 1,
            policy=self.policy,
            repeats=tries.repeats,
        )

    def _follow(
        self,
        decision: Decision,
        failure: Failure,
        call: Call,
        model: str,
        tries: _Tries,
        deadline: float,
        ends_run: Callable[[ExitCode], bool],
    ) -> bool:
        """Act on a decision other than waiting: True to ask again at once (another kind of server,
        route or model); raises the stop error; False to wait and retry."""
        missing = failure.kind is Kind.ROUTE and failure.status == 404 and tries.kind != UNKNOWN
        if missing and self.server.recheck(deadline, f"{call.path} is missing on a {tries.kind} server"):
            return True  # another kind now listens there: the loop asks it its own way
        if decision.action is Action.SWITCH_ROUTE:
            tries.route_index += 1
            if failure.status == 400:  # CLIProxyAPI: its images API does not serve Gemini models
                self.server.learn(CLIPROXYAPI)
                tries.kind = CLIPROXYAPI
            self.warn(f"{call.path} is not available here ({failure.detail}); using /chat/completions")
            return True
        if decision.action is Action.OTHER_MODEL and self._fall_back(model, failure, tries.warnings):
            return True
        if decision.action is not Action.RETRY:
            if self._cut_short(failure, tries):  # the deadline ended it, not the server: say what kept us
                raise deadline_error(self.settings.timeout, tries.before)
            if ends_run(failure.exit_code):
                self.throttle.cancel()
            spent = time.monotonic() - tries.started
            raise stop_error(failure, decision.gave_up, tries.attempts, spent, decision.note)
        return False

    def _cut_short(self, failure: Failure, tries: _Tries) -> bool:
        """A timeout of an attempt started with only a sliver of the deadline left, after another failure
        (a quota wait took the rest): that failure is what kept the picture from being made."""
        sliver = tries.allotted < CUT_SHORT * self.settings.timeout
        return failure.kind is Kind.TIMEOUT and tries.before is not None and sliver

    def _wait(
        self,
        decision: Decision,
        failure: Failure,
        too_many: bool,
        tries: _Tries,
        status: Callable[[str], None],
    ) -> None:
        """Say why, then wait before the retry. A long wait the server states holds back every new
        request, and so does a refusal with nothing else of ours in flight (the others would only be
        refused too); a short stated one (Google's usual "retry in 1.2 s") holds only this picture."""
        self.info(f"attempt {tries.attempts} failed: {failure.detail}")
        if too_many:
            self.info(f"{tries.label}: refused with others in flight; retrying with fewer at once")
        else:
            self.warn(f"{failure.detail}; retrying in {decision.wait:.1f} s")
        status(f"{tries.label}: waiting {decision.wait:.0f} s to retry")
        if not (decision.pause_all or tries.hold_all) and decision.wait > 0:  # a pause: the throttle keeps it
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
