import random

import pytest

from image_gen_local.failures import Failure, Kind, retry_delay
from image_gen_local.retry import (
    MAX_ATTEMPTS_PER_MINUTE,
    MAX_STATED_WAIT,
    MIN_STATED_WAIT,
    Action,
    RetryPolicy,
    attempt_timeout,
    backoff,
    counts_as_no_image,
    crowded,
    decide,
    rate_cap_wait,
    same_failure,
)


def test_stated_delay_is_honoured_never_shortened():
    rng = random.Random(1)
    failure = Failure(Kind.RATE_LIMIT, "x", 429, retry_after=3.0)
    for attempt in range(1, 6):
        assert 3.0 <= backoff(RetryPolicy(), failure, attempt, rng) <= 3.0 * 1.13 + 0.05


def test_rate_limit_grows_and_is_capped():
    rng = random.Random(2)
    policy = RetryPolicy()
    failure = Failure(Kind.RATE_LIMIT, "x", 429)
    delays = [backoff(policy, failure, attempt, rng) for attempt in range(1, 9)]
    assert 0.75 <= delays[0] <= 1.25  # quick first retry: the proxy rotates accounts
    assert 5 * 0.75 <= delays[1] <= 5 * 1.25
    assert delays[3] > delays[1]
    assert max(delays) <= policy.max_delay * 1.25


def test_jitter_spreads_retries():
    rng = random.Random(3)
    failure = Failure(Kind.CAPACITY, "x", 500)
    assert len({round(backoff(RetryPolicy(), failure, 1, rng), 6) for _ in range(20)}) > 10


def test_attempt_timeout_leaves_room_for_one_retry_of_a_hang():
    assert attempt_timeout(600) == 420
    assert attempt_timeout(300) == 300  # little left: all of it
    assert attempt_timeout(100) == 100
    assert attempt_timeout(3000) == 2100


# --- the decision table -----------------------------------------------------------------------------------

RETRY, SWITCH, OTHER, STOP = Action.RETRY, Action.SWITCH_ROUTE, Action.OTHER_MODEL, Action.STOP


def _f(kind: Kind, status: int | None = None, retry_after: float | None = None) -> Failure:
    return Failure(kind, "words", status, retry_after)


# (failure, attempts, no_image, wait, time_left, routes_left, max_retries) -> (action, gave_up, slow, pause)
DECISIONS = [
    ("a 429 with time left is retried and slows the run", _f(Kind.RATE_LIMIT, 429), 1, 0, 1.0, 60, 0, None,
     (RETRY, False, True, False)),
    ("a long stated wait pauses everyone", _f(Kind.RATE_LIMIT, 429, 5.0), 1, 0, 5.0, 60, 0, None,
     (RETRY, False, True, True)),
    ("a short stated wait pauses only this picture", _f(Kind.RATE_LIMIT, 429, 1.2), 1, 0, 1.2, 60, 0, None,
     (RETRY, False, True, False)),
    ("a 503 capacity answer slows the run", _f(Kind.CAPACITY, 503), 2, 0, 10.0, 60, 0, None,
     (RETRY, False, True, False)),
    ("a reset is retried without slowing the run", _f(Kind.CAPACITY), 1, 0, 1.0, 60, 0, None,
     (RETRY, False, False, False)),
    ("a 500 is retried without slowing the run", _f(Kind.CAPACITY, 500), 1, 0, 1.0, 60, 0, None,
     (RETRY, False, False, False)),
    ("a wait beyond the deadline gives up", _f(Kind.RATE_LIMIT, 429), 3, 0, 20.0, 10.0, 0, None,
     (STOP, True, False, False)),
    ("a wait exactly at the deadline gives up", _f(Kind.CAPACITY, 503), 3, 0, 10.0, 10.0, 0, None,
     (STOP, True, False, False)),
    ("retries run out", _f(Kind.TIMEOUT), 3, 0, 1.0, 60, 0, 2, (STOP, True, False, False)),
    ("the last allowed retry still happens", _f(Kind.TIMEOUT), 2, 0, 1.0, 60, 0, 2,
     (RETRY, False, False, False)),
    ("a first no-picture answer is retried", _f(Kind.NO_IMAGE, 502), 1, 1, 1.0, 60, 0, None,
     (RETRY, False, False, False)),
    ("a second no-picture answer stops", _f(Kind.NO_IMAGE, 502), 2, 2, 1.0, 60, 0, None,
     (STOP, False, False, False)),
    ("a second broken answer stops", _f(Kind.BAD_ANSWER, 200), 2, 2, 1.0, 60, 0, None,
     (STOP, False, False, False)),
    ("a missing route switches when another is left", _f(Kind.ROUTE, 404), 1, 0, 1.0, 60, 1, None,
     (SWITCH, False, False, False)),
    ("a missing route stops when none is left", _f(Kind.ROUTE, 404), 1, 0, 1.0, 60, 0, None,
     (STOP, False, False, False)),
    ("an unavailable model tries the other tier", _f(Kind.MODEL, 502), 1, 0, 1.0, 60, 0, None,
     (OTHER, False, False, False)),
    ("a rejected key stops at once", _f(Kind.AUTH, 401), 1, 0, 1.0, 60, 1, None, (STOP, False, False, False)),
    ("a safety refusal stops at once", _f(Kind.SAFETY, 200), 1, 0, 1.0, 60, 1, None,
     (STOP, False, False, False)),
    ("a hostile answer stops at once", _f(Kind.HOSTILE, 200), 1, 0, 1.0, 60, 0, None,
     (STOP, False, False, False)),
    ("an unreachable server stops at once", _f(Kind.UNREACHABLE), 1, 0, 1.0, 60, 0, None,
     (STOP, False, False, False)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("failure", "attempts", "no_image", "wait", "time_left", "routes_left", "max_retries", "expected"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_the_retry_decision_table(
    failure, attempts, no_image, wait, time_left, routes_left, max_retries, expected
):
    decision = decide(
        failure,
        attempts=attempts,
        no_image=no_image,
        wait=wait,
        time_left=time_left,
        routes_left=routes_left,
        policy=RetryPolicy(max_retries=max_retries),
    )
    assert (decision.action, decision.gave_up, decision.slow_down, decision.pause_all) == expected
    assert decision.wait == (wait if decision.action is RETRY else 0.0)


def test_only_no_picture_and_broken_answers_count_towards_the_one_retry():
    counted = {kind for kind in Kind if counts_as_no_image(_f(kind))}
    assert counted == {Kind.NO_IMAGE, Kind.BAD_ANSWER}


# --- stated waits: a floor, a ceiling, and a cap per minute whatever the server says ---------------------

STATED = [  # (what the server said, the least and most we may wait)
    (0.0, MIN_STATED_WAIT, MIN_STATED_WAIT * 1.2),
    (0.001, MIN_STATED_WAIT, MIN_STATED_WAIT * 1.2),
    (1.5, 1.5, 1.5 * 1.2),
    (30.0, 30.0, 30.0 * 1.2),
    (1e9, MAX_STATED_WAIT, MAX_STATED_WAIT * 1.2),
]


@pytest.mark.parametrize(("stated", "least", "most"), STATED)
def test_a_stated_wait_is_honoured_within_its_floor_and_ceiling(stated, least, most):
    failure = Failure(Kind.RATE_LIMIT, "x", 429, stated)
    for attempt in (1, 2, 5):
        wait = backoff(RetryPolicy(), failure, attempt, random.Random(attempt))
        assert least <= wait <= most


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("-5", 0.0), ("nan", None), ("inf", None), ("-inf", None), ("12", 12.0), ("soon", None)],
)
def test_retry_after_values_that_are_not_a_wait_are_ignored(value, expected):
    assert retry_delay("", {"Retry-After": value}) == expected


RATE_CAP = [  # (start times of earlier attempts, now, the least wait before the next)
    ([], 0.0, 0.0),
    ([float(i) for i in range(MAX_ATTEMPTS_PER_MINUTE - 1)], 20.0, 0.0),
    ([float(i) for i in range(MAX_ATTEMPTS_PER_MINUTE)], 20.0, 40.0),
    ([float(i) for i in range(MAX_ATTEMPTS_PER_MINUTE)], 61.0, 0.0),
    ([0.0] * 100, 1.0, 59.0),
]


@pytest.mark.parametrize(("starts", "now", "wait"), RATE_CAP)
def test_no_picture_sends_more_than_the_cap_of_attempts_in_any_minute(starts, now, wait):
    assert rate_cap_wait(starts, now) == pytest.approx(wait)


def test_a_stated_wait_beyond_the_deadline_stops_and_names_the_wait_asked_for():
    failure = Failure(Kind.RATE_LIMIT, "x", 429, 3600.0)
    decision = decide(
        failure,
        attempts=1,
        no_image=0,
        wait=MAX_STATED_WAIT,
        time_left=50.0,
        routes_left=0,
        policy=RetryPolicy(),
    )
    assert decision.action is Action.STOP and decision.gave_up
    assert "asked to wait 3600 s" in decision.note and "50 s left" in decision.note


# Gateways: an unreachable upstream gets a few seconds; the very same 5xx answer a bounded number of times.
# (failure, attempts, repeats) -> (action, gave_up)
GATEWAY_DECISIONS = [
    ("an unreachable upstream is retried", _f(Kind.UPSTREAM_DOWN, 500), 1, 1, (RETRY, False)),
    ("an unreachable upstream stops at the third attempt", _f(Kind.UPSTREAM_DOWN, 500), 3, 3, (STOP, True)),
    ("the same 500 is retried a few times", _f(Kind.CAPACITY, 500), 3, 3, (RETRY, False)),
    ("the same 500 a fourth time stops", _f(Kind.CAPACITY, 500), 4, 4, (STOP, True)),
    ("different 500s keep being retried", _f(Kind.CAPACITY, 500), 9, 1, (RETRY, False)),
    ("503 capacity is not bounded by repeats", _f(Kind.CAPACITY, 503), 9, 9, (RETRY, False)),
    ("resets are not bounded by repeats", _f(Kind.CAPACITY), 9, 9, (RETRY, False)),
    ("an unknown model tries the other tier", _f(Kind.UNKNOWN_MODEL, 400), 1, 1, (OTHER, False)),
    ("the gateway's own key refused stops", _f(Kind.GATEWAY_KEY, 401), 1, 1, (STOP, False)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("failure", "attempts", "repeats", "expected"),
    [case[1:] for case in GATEWAY_DECISIONS],
    ids=[case[0] for case in GATEWAY_DECISIONS],
)
def test_gateway_failures_have_a_short_budget(failure, attempts, repeats, expected):
    decision = decide(
        failure,
        attempts=attempts,
        no_image=0,
        wait=1.0,
        time_left=500.0,
        routes_left=0,
        policy=RetryPolicy(),
        repeats=repeats,
    )
    assert (decision.action, decision.gave_up) == expected


def test_same_failure_means_same_status_and_words():
    assert same_failure(_f(Kind.CAPACITY, 500), _f(Kind.CAPACITY, 500))
    assert not same_failure(_f(Kind.CAPACITY, 500), _f(Kind.CAPACITY, 502))
    assert not same_failure(None, _f(Kind.CAPACITY, 500))


@pytest.mark.parametrize(
    ("failure", "sent_with", "expected"),
    [
        (Failure(Kind.RATE_LIMIT, "All accounts exhausted", 429), 3, True),
        (Failure(Kind.CAPACITY, "MODEL_CAPACITY_EXHAUSTED", 503), 2, True),
        (Failure(Kind.RATE_LIMIT, "All accounts exhausted", 429), 1, False),  # alone: the server is busy
        (Failure(Kind.RATE_LIMIT, "retry in 1.2 s", 429, retry_after=1.2), 4, False),  # a stated wait
        (Failure(Kind.CAPACITY, "Internal error encountered.", 500), 4, False),  # not an overload
    ],
)
def test_an_overload_among_others_of_ours_without_a_stated_wait_means_too_many_at_once(
    failure, sent_with, expected
):
    assert crowded(failure, sent_with) is expected
