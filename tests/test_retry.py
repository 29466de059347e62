import random

from image_gen_local.failures import Failure, Kind
from image_gen_local.retry import RetryPolicy, attempt_timeout, backoff


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
