import threading
import time

import pytest

from image_gen_local.throttle import Cancelled, Throttle


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def take(throttle: Throttle, clock: FakeClock) -> bool:
    """A non-blocking acquire on a fake clock: the deadline is now, so it never sleeps."""
    return throttle.acquire(deadline=clock.now)


@pytest.mark.parametrize("concurrency", [0, -1])
def test_concurrency_below_one_is_refused(concurrency):
    with pytest.raises(ValueError, match="at least 1"):
        Throttle(concurrency)


def test_at_most_concurrency_holders_at_once():
    throttle = Throttle(concurrency=3)
    lock = threading.Lock()
    full = threading.Event()
    holders = peak = admitted = 0

    def worker() -> None:
        nonlocal holders, peak, admitted
        assert throttle.acquire(time.monotonic() + 5)
        with lock:
            holders += 1
            admitted += 1
            peak = max(peak, holders)
            if holders == 3:
                full.set()
        full.wait(timeout=1)  # hold until three are in, so a fourth admitted too early would be seen
        time.sleep(0.01)
        with lock:
            holders -= 1
        throttle.release(True)

    threads = [threading.Thread(target=worker) for _ in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert admitted == 9
    assert peak == 3
    assert throttle.active == 0


def test_acquire_gives_up_when_the_deadline_passes_while_blocked():
    throttle = Throttle(concurrency=1)
    assert throttle.acquire(time.monotonic() + 1)
    started = time.monotonic()
    assert throttle.acquire(started + 0.1) is False
    waited = time.monotonic() - started
    assert 0.05 <= waited < 2
    assert throttle.active == 1


def test_a_release_wakes_a_blocked_acquire():
    throttle = Throttle(concurrency=1)
    assert throttle.acquire(time.monotonic() + 1)
    timer = threading.Timer(0.05, throttle.release, args=(True,))
    timer.start()
    started = time.monotonic()
    assert throttle.acquire(started + 5)
    assert time.monotonic() - started < 2  # woken, not timed out
    timer.join()


def test_a_free_slot_is_given_even_at_the_deadline():
    clock = FakeClock()
    throttle = Throttle(concurrency=2, clock=clock)
    assert take(throttle, clock)
    assert throttle.acquire(deadline=clock.now - 10)  # nothing to wait for: no need for time left
    assert not take(throttle, clock)


def test_a_stated_wait_pauses_everyone_until_it_ends():
    clock = FakeClock(100.0)
    throttle = Throttle(concurrency=4, clock=clock)
    throttle.slow_down(10, stated=True)
    assert throttle.paused_until == 110.0
    assert not take(throttle, clock)  # free slots, but the server said wait
    clock.now = 109.9
    assert not take(throttle, clock)
    clock.now = 110.0
    assert take(throttle, clock)


def test_an_unstated_overload_lowers_the_limit_but_does_not_pause():
    clock = FakeClock(100.0)
    throttle = Throttle(concurrency=3, clock=clock)
    throttle.slow_down(10)
    assert throttle.paused_until == 0.0 and throttle.pauses == 0
    assert take(throttle, clock) and take(throttle, clock)
    assert not take(throttle, clock)  # limit 2 now


def test_one_overload_event_lowers_the_limit_once():
    clock = FakeClock(0.0)
    throttle = Throttle(concurrency=4, clock=clock)
    for _ in range(4):  # four workers see the same overload
        throttle.slow_down(5)
    assert throttle.limit == 3 and throttle.decreases == 1
    clock.now = 5.0  # the event is over: a new overload lowers it again
    throttle.slow_down(5)
    assert throttle.limit == 2 and throttle.decreases == 2
    for step in range(3):
        clock.now = 10.0 + 5 * step
        throttle.slow_down(5)
    assert throttle.limit == 1  # a storm walks it down to one, never below


def test_stated_pauses_are_counted_once_per_pause():
    clock = FakeClock(0.0)
    throttle = Throttle(concurrency=4, clock=clock)
    throttle.slow_down(10.0, stated=True)
    clock.now = 0.1
    throttle.slow_down(10.2, stated=True)  # the same overload, seen by another worker: one pause, extended
    assert throttle.paused_until == pytest.approx(10.3) and throttle.pauses == 1
    clock.now = 20.0
    throttle.slow_down(5, stated=True)
    assert throttle.pauses == 2 and throttle.paused_until == 25.0


def test_successes_raise_the_limit_by_one_each_after_the_event():
    clock = FakeClock(0.0)
    throttle = Throttle(concurrency=4, clock=clock)
    throttle.slow_down(2)
    clock.now = 2.0
    throttle.slow_down(2)
    assert throttle.limit == 2
    assert take(throttle, clock)
    throttle.release(True)
    assert throttle.limit == 2  # still inside the overload event: no growth yet
    clock.now = 4.0
    for expected in (3, 4, 4):
        assert take(throttle, clock)
        throttle.release(True)
        assert throttle.limit == expected  # one per success, never above the concurrency asked for
    throttle.slow_down(1)
    clock.now = 6.0
    assert take(throttle, clock)
    throttle.release(False)  # failures do not count
    assert throttle.limit == 3


def test_cancel_refuses_every_later_request():
    from image_gen_local.throttle import Cancelled

    throttle = Throttle(concurrency=2)
    assert throttle.acquire(time.monotonic() + 1)
    throttle.cancel()
    with pytest.raises(Cancelled):
        throttle.acquire(time.monotonic() + 1)


def test_per_minute_spaces_starts():
    clock = FakeClock(50.0)
    throttle = Throttle(concurrency=2, per_minute=30, clock=clock)
    assert throttle.interval == pytest.approx(2.0)
    assert take(throttle, clock)
    assert not take(throttle, clock)  # a slot is free but it is too soon
    clock.now = 51.99
    assert not take(throttle, clock)
    clock.now = 52.0
    assert take(throttle, clock)
    assert throttle.active == 2


def test_without_a_rate_starts_are_not_spaced():
    clock = FakeClock()
    throttle = Throttle(concurrency=3, clock=clock)
    assert throttle.interval == 0.0
    assert all(take(throttle, clock) for _ in range(3))


def test_a_rate_is_kept_even_with_one_worker_releasing_at_once():
    clock = FakeClock(0.0)
    throttle = Throttle(concurrency=1, per_minute=60, clock=clock)
    assert take(throttle, clock)
    throttle.release(True)
    clock.now = 0.5
    assert not take(throttle, clock)
    clock.now = 1.0
    assert take(throttle, clock)


def test_an_interrupted_run_starts_no_new_save_and_waits_for_the_one_under_way():
    throttle = Throttle(2)
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def save() -> None:
        with throttle.saving():
            inside.set()
            release.wait(timeout=10)
        done.set()

    worker = threading.Thread(target=save)
    worker.start()
    assert inside.wait(timeout=10)
    throttle.interrupt()
    with pytest.raises(Cancelled), throttle.saving():  # no new file once the user stopped the run
        pass
    assert throttle.drained(0.05) is False  # the save under way is not over
    threading.Timer(0.1, release.set).start()
    assert throttle.drained(10) is True and done.is_set()
    worker.join(timeout=10)


def test_a_failure_that_ends_the_run_still_lets_a_received_picture_be_saved():
    throttle = Throttle(1)
    throttle.cancel()
    with throttle.saving():  # cancel stops requests, not the saving of what already arrived
        pass
    assert throttle.drained(0) is True


def test_branches_share_slots_and_pauses_but_are_cancelled_alone():
    clock = FakeClock()
    shared = Throttle(concurrency=2, clock=clock)
    first, second = shared.branch(), shared.branch()
    assert take(first, clock) and take(second, clock)
    assert not take(shared, clock)  # both slots are held, whoever asks
    first.release(True)
    second.slow_down(5.0, stated=True)  # an overload seen by one call holds back every call
    assert shared.paused_until == first.paused_until == 105.0 and first.limit == 1
    first.interrupt()
    with pytest.raises(Cancelled):
        first.acquire(clock.now)
    with pytest.raises(Cancelled), first.saving():  # nor a new file
        pass
    with second.saving():  # the other call goes on
        pass
    clock.now = 106.0
    second.release(True)
    assert take(second, clock)
