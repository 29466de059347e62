"""What to do after a failed attempt, and how long to wait. Pure: the caller sleeps and switches.

The server's images path rotates accounts without backing off, so the client must: honour what the
server asked for (Retry-After, Google's retryDelay), else back off exponentially with jitter so parallel
agents do not retry in lockstep. The first retry is quick: the proxy answers the next request from another
account, which often has capacity. Some failures cannot be waited out however long the deadline: a gateway
that cannot reach its upstream gets a few seconds, the very same non-overload 5xx answer a few attempts.
`decide` is the whole decision table: retry, switch route, try the other model, or stop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from .errors import ExitCode, ServerError
from .failures import Failure, Kind

# A wait the server states (Retry-After, retryDelay) is honoured within these bounds: "0", negative or "0s"
# cannot turn retries into a storm, and "wait a day" cannot park a picture beyond reason.
MIN_STATED_WAIT = 1.0
MAX_STATED_WAIT = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    first_retry: float = 1.0  # any transient failure without a stated delay, the first time
    first_delay: float = 2.0  # then: resets, 5xx, a broken answer
    rate_limit_delay: float = 5.0  # 429 without a stated delay: 1, then 5, 10, 20, 40, 60
    capacity_delay: float = 10.0  # 503 capacity exhausted
    max_delay: float = 60.0
    jitter: float = 0.25  # +-25 %
    no_image_retries: int = 1  # "No images generated" is usually a safety block: retry once only
    max_retries: int | None = None  # retries per picture; None: as many as the deadline allows
    upstream_down_attempts: int = 3  # a gateway that cannot reach its upstream: a few seconds, then stop
    same_error_attempts: int = 4  # the very same non-overload 5xx answer this often in a row: stop
    min_stated_delay: float = MIN_STATED_WAIT  # a stated wait is never shorter (bench/soak.py scales it)


# Whatever the server says, one picture never sends more than this many attempts in any 60 seconds.
MAX_ATTEMPTS_PER_MINUTE = 12
PAUSE_ALL_AFTER = 2.0  # a stated wait this long means quota or capacity is gone for everyone, not a blip
MIN_ATTEMPT_SECONDS = 240.0  # a real 4K picture can take minutes; never cut an attempt shorter than this
ATTEMPT_SHARE = 0.7


def attempt_timeout(remaining: float) -> float:
    """How long one attempt may take.

    All that is left when little is left; otherwise most of it, so that a connection that hangs for ever
    can still be retried once before the deadline (600 s gives 420 s, then up to 180 s).
    """
    if remaining < 2 * MIN_ATTEMPT_SECONDS:
        return remaining
    return max(MIN_ATTEMPT_SECONDS, remaining * ATTEMPT_SHARE)


def backoff(policy: RetryPolicy, failure: Failure, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
    if failure.retry_after is not None:
        # Stated delays are honoured plus a little slack, never less, within the floor and the ceiling.
        stated = min(MAX_STATED_WAIT, max(policy.min_stated_delay, failure.retry_after))
        return stated * (1 + rng.uniform(0, policy.jitter / 2)) + 0.05
    if attempt <= 1:
        delay = policy.first_retry
    else:
        if failure.kind is Kind.RATE_LIMIT:
            base = policy.rate_limit_delay
        elif failure.kind is Kind.CAPACITY and failure.status == 503:
            base = policy.capacity_delay
        else:
            base = policy.first_delay
        delay = min(policy.max_delay, base * 2 ** (attempt - 2))
    return max(0.0, delay * (1 + rng.uniform(-policy.jitter, policy.jitter)))


def rate_cap_wait(recent: list[float], now: float) -> float:
    """How long to hold the next attempt so that at most MAX_ATTEMPTS_PER_MINUTE start in any 60 s.

    `recent` are the start times (monotonic) of this picture's attempts so far.
    """
    window = [t for t in recent if now - t < 60.0]
    if len(window) < MAX_ATTEMPTS_PER_MINUTE:
        return 0.0
    return max(0.0, window[-MAX_ATTEMPTS_PER_MINUTE] + 60.0 - now)


class Action(str, Enum):
    RETRY = "retry"  # wait, then the same request again
    SWITCH_ROUTE = "switch_route"  # this API is missing here: the next route, at once
    OTHER_MODEL = "other_model"  # the model is unavailable: the other tier, at once (if not tried yet)
    STOP = "stop"  # give up with the failure's exit code


@dataclass(frozen=True)
class Decision:
    action: Action
    wait: float = 0.0  # before a retry
    gave_up: bool = False  # stopped although the failure was retryable: time or retries ran out
    slow_down: bool = False  # the server is overloaded: the whole run should ask less at once
    pause_all: bool = False  # ... and hold every new request until `wait` is over
    note: str = ""  # why it stopped early, when that is not obvious (a stated wait beyond the deadline)


def counts_as_no_image(failure: Failure) -> bool:
    """Failures retried once only: the model gave no usable picture (usually a safety block)."""
    return failure.kind in (Kind.NO_IMAGE, Kind.BAD_ANSWER)


def overloaded(failure: Failure) -> bool:
    """The server says it is too busy (as opposed to a flaky connection): the whole run should slow down."""
    return failure.kind is Kind.RATE_LIMIT or (failure.kind is Kind.CAPACITY and failure.status == 503)


def crowded(failure: Failure, sent_with: int) -> bool:
    """Refused as overloaded while others of ours were in flight, with no wait stated: too many at once.
    What helps is fewer in flight (the limiter), not a pause: the picture waits only for a free slot."""
    return overloaded(failure) and failure.retry_after is None and sent_with > 1


def same_failure(previous: Failure | None, failure: Failure) -> bool:
    """The very same answer again: same status, same words (a gateway's crashing error path, say)."""
    return previous is not None and (previous.status, previous.detail) == (failure.status, failure.detail)


def _stuck(failure: Failure, attempts: int, repeats: int, policy: RetryPolicy) -> bool:
    """Retrying cannot help any more, although the failure is of a retryable kind."""
    if failure.kind is Kind.UPSTREAM_DOWN:
        return attempts >= policy.upstream_down_attempts
    answered_5xx = failure.status is not None and failure.status >= 500
    if failure.kind is Kind.CAPACITY and answered_5xx and not overloaded(failure):
        return repeats >= policy.same_error_attempts
    return False


def decide(
    failure: Failure,
    *,
    attempts: int,
    no_image: int,
    wait: float,
    time_left: float,
    routes_left: int,
    policy: RetryPolicy,
    repeats: int = 1,
) -> Decision:
    """After attempt number `attempts` failed with `failure` (the `no_image`-th no-picture failure so
    far, the `repeats`-th time in a row with the very same answer), with `wait` the backoff it would take
    and `time_left` before the deadline."""
    if failure.kind is Kind.ROUTE and routes_left > 0:
        return Decision(Action.SWITCH_ROUTE)
    if failure.kind in (Kind.MODEL, Kind.UNKNOWN_MODEL):
        return Decision(Action.OTHER_MODEL)
    if not failure.retryable or no_image > policy.no_image_retries:
        return Decision(Action.STOP)
    out_of_retries = policy.max_retries is not None and attempts > policy.max_retries
    out_of_retries = out_of_retries or _stuck(failure, attempts, repeats, policy)
    if wait >= time_left or out_of_retries:
        note = ""
        if not out_of_retries and failure.retry_after is not None:
            note = (
                f"the server asked to wait {_seconds(failure.retry_after)} before retrying, "
                f"more than the {_seconds(max(0.0, time_left))} left before --timeout"
            )
        return Decision(Action.STOP, gave_up=True, note=note)
    slow = overloaded(failure)
    pause = slow and failure.retry_after is not None and wait >= PAUSE_ALL_AFTER
    return Decision(Action.RETRY, wait, slow_down=slow, pause_all=pause)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 1e6 else f"{value:.3g} s"


def stop_error(failure: Failure, gave_up: bool, attempts: int, spent: float, note: str = "") -> ServerError:
    """The error a picture ends with when the decision is to stop: the failure's words, fix and exit code."""
    detail = failure.detail
    if gave_up:
        detail += f" (still failing after {attempts} attempt(s) in {spent:.0f} s)"
    if note:
        detail += f"; {note}"
    return ServerError(detail, failure.fix, failure.exit_code)


def deadline_error(timeout: float, last: Failure | None) -> ServerError:
    """No picture within --timeout: a quota that was still failing says so (exit 5), else exit 8."""
    after = f"; last problem: {last.detail}" if last else ""
    if last is not None and last.kind in (Kind.RATE_LIMIT, Kind.CAPACITY, Kind.MODEL):
        return ServerError(f"no picture within --timeout {timeout:.0f} s{after}", last.fix, ExitCode.QUOTA)
    return ServerError(
        f"no picture within --timeout {timeout:.0f} s{after}",
        "the server is slow (4K can take minutes): raise --timeout",
        ExitCode.DEADLINE,
    )
