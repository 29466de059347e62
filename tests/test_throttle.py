import threading
import time

import pytest

from helpers import wait_until
from image_gen_local.limiter import BLIND_LIMIT, Verdict
from image_gen_local.throttle import Cancelled, Slot, Throttle


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def take(throttle: Throttle, clock: FakeClock) -> Slot | None:
    """A non-blocking acquire on a fake clock: the deadline is now, so it never sleeps."""
    return throttle.acquire(deadline=clock.now)


@pytest.mark.parametrize("concurrency", [0, -1])
def test_concurrency_below_one_is_refused(concurrency):
    with pytest.raises(ValueError, match="at least 1"):
        Throttle(concurrency)


def test_never_more_holders_than_the_ceiling():
    throttle = Throttle(ceiling=3)
    lock = threading.Lock()
    holders = peak = admitted = 0

    def worker() -> None:
        nonlocal holders, peak, admitted
        for _ in range(4):
            slot = throttle.acquire(time.monotonic() + 10)
            assert slot is not None
            with lock:
                holders += 1
                admitted += 1
                peak = max(peak, holders)
            time.sleep(0.05)  # every request takes as long: a server that never pushes back
            with lock:
                holders -= 1
            throttle.release(slot, Verdict.HEALTHY)

    threads = [threading.Thread(target=worker) for _ in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert admitted == 36
    assert peak == 3  # started at two, grew while answers were healthy, never a fourth
    assert throttle.active == 0 and throttle.limit == 3


def test_acquire_gives_up_when_the_deadline_passes_while_blocked():
    throttle = Throttle(ceiling=1)
    assert throttle.acquire(time.monotonic() + 1)
    started = time.monotonic()
    assert throttle.acquire(started + 0.1) is None
    assert time.monotonic() - started >= 0.1  # it waited for the deadline, not a moment less
    assert throttle.active == 1


def test_a_release_lets_a_blocked_acquire_through():
    throttle = Throttle(ceiling=1)
    slot = throttle.acquire(time.monotonic() + 1)
    assert slot
    released: list[float] = []

    def release() -> None:
        released.append(time.monotonic())
        throttle.release(slot, Verdict.HEALTHY)

    timer = threading.Timer(0.05, release)
    timer.start()
    second = throttle.acquire(time.monotonic() + 60)
    timer.join()
    assert second and second.started >= released[0]  # admitted once the first was given back


def test_a_free_slot_is_given_even_at_the_deadline():
    clock = FakeClock()
    throttle = Throttle(ceiling=2, clock=clock)
    assert take(throttle, clock)
    assert throttle.acquire(deadline=clock.now - 10)  # nothing to wait for: no need for time left
    assert not take(throttle, clock)


def test_a_stated_wait_pauses_everyone_until_it_ends():
    clock = FakeClock(100.0)
    throttle = Throttle(ceiling=4, clock=clock)
    throttle.pause(10)
    assert throttle.paused_until == 110.0
    assert not take(throttle, clock)  # free slots, but the server said wait
    clock.now = 109.9
    assert not take(throttle, clock)
    clock.now = 110.0
    assert take(throttle, clock)


def test_stated_pauses_are_counted_once_per_pause():
    clock = FakeClock(0.0)
    throttle = Throttle(ceiling=4, clock=clock)
    throttle.pause(10.0)
    clock.now = 0.1
    throttle.pause(10.2)  # the same overload, seen by another worker: one pause, extended
    assert throttle.paused_until == pytest.approx(10.3) and throttle.pauses == 1
    clock.now = 20.0
    throttle.pause(5)
    assert throttle.pauses == 2 and throttle.paused_until == 25.0


def test_a_pause_the_server_did_not_state_holds_everyone_but_is_not_counted_as_one():
    clock = FakeClock(0.0)
    throttle = Throttle(ceiling=4, clock=clock)
    throttle.pause(2.0, stated=False)  # our only request refused while others' pictures hold every place
    assert not take(throttle, clock) and throttle.pauses == 0
    clock.now = 2.0
    assert take(throttle, clock)


def test_a_picture_under_way_gets_a_free_slot_before_one_that_has_not_started():
    throttle = Throttle(ceiling=1)
    held = throttle.acquire(time.monotonic() + 5)
    assert held
    order: list[str] = []

    def first_request() -> None:  # no deadline yet: its --timeout starts once it has a slot
        slot = throttle.acquire(None)
        order.append("new")
        throttle.release(slot, Verdict.HEALTHY)

    def retry() -> None:
        slot = throttle.acquire(time.monotonic() + 30)
        order.append("retry")
        throttle.release(slot, Verdict.HEALTHY)

    fresh = threading.Thread(target=first_request)
    fresh.start()
    wait_until(lambda: throttle._gate.cond._waiters)  # the new picture waits first
    again = threading.Thread(target=retry)
    again.start()
    wait_until(lambda: throttle._gate.under_way == 1)
    throttle.release(held, Verdict.HEALTHY)
    for thread in (fresh, again):
        thread.join(timeout=30)
    assert order == ["retry", "new"]


def test_a_picture_waiting_for_its_first_slot_waits_as_long_as_it_takes_but_not_past_a_cancel():
    throttle = Throttle(ceiling=1)
    assert throttle.acquire(time.monotonic() + 5)
    outcome: list[str] = []

    def first_request() -> None:
        try:
            throttle.acquire(None)
            outcome.append("admitted")
        except Cancelled:
            outcome.append("cancelled")

    waiter = threading.Thread(target=first_request)
    waiter.start()
    waiter.join(timeout=1.5)  # longer than a nap: it went on waiting, it did not give up
    assert waiter.is_alive() and outcome == []
    throttle.cancel()
    waiter.join(timeout=30)
    assert outcome == ["cancelled"]


def test_a_refusal_among_others_in_flight_lowers_the_limit_at_once_without_a_pause():
    clock = FakeClock(0.0)
    throttle = Throttle(ceiling=8, clock=clock)
    first, second = take(throttle, clock), take(throttle, clock)
    assert first and second and second.sent_with == 2
    throttle.release(second, Verdict.OVERLOADED, crowded=True)
    assert throttle.limit == 1 and throttle.paused_until == 0.0 and throttle.decreases == 1
    assert not take(throttle, clock)  # the first is still in flight: the refused one waits for it
    throttle.release(first, Verdict.HEALTHY)
    assert take(throttle, clock)


def test_the_first_requests_grow_the_limit_once_they_are_accepted():
    clock = FakeClock(0.0)
    said: list[str] = []
    throttle = Throttle(ceiling=8, clock=clock, report=said.append)
    assert take(throttle, clock) and take(throttle, clock) and not take(throttle, clock)
    clock.now = 0.2  # neither was refused at once: the server accepted them
    assert take(throttle, clock) and not take(throttle, clock)
    for step in range(4, BLIND_LIMIT + 1):
        clock.now = 0.2 * step
        assert take(throttle, clock)
    clock.now = 10.0
    assert not take(throttle, clock)  # so many before any answer, however long it takes
    assert throttle.limit == BLIND_LIMIT and said[0].startswith("concurrency 2 -> 3")


def test_an_overload_alone_in_flight_lowers_the_limit_once_per_event():
    clock = FakeClock(0.0)
    throttle = Throttle(ceiling=4, clock=clock)
    for _ in range(2):  # two pictures, one after the other, each alone in flight, the same overload
        slot = take(throttle, clock)
        assert slot is not None and slot.sent_with == 1
        throttle.release(slot, Verdict.OVERLOADED, wait=5.0)
    assert throttle.limit == 1 and throttle.decreases == 1 and throttle.paused_until == 0.0


def test_cancel_refuses_every_later_request():
    from image_gen_local.throttle import Cancelled

    throttle = Throttle(ceiling=2)
    assert throttle.acquire(time.monotonic() + 1)
    throttle.cancel()
    with pytest.raises(Cancelled):
        throttle.acquire(time.monotonic() + 1)


def test_per_minute_spaces_starts():
    clock = FakeClock(50.0)
    throttle = Throttle(ceiling=2, per_minute=30, clock=clock)
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
    throttle = Throttle(ceiling=2, clock=clock)
    assert throttle.interval == 0.0
    assert all(take(throttle, clock) for _ in range(2))


def test_a_rate_is_kept_even_with_one_worker_releasing_at_once():
    clock = FakeClock(0.0)
    throttle = Throttle(ceiling=1, per_minute=60, clock=clock)
    slot = take(throttle, clock)
    assert slot
    throttle.release(slot, Verdict.HEALTHY)
    clock.now = 0.5
    assert not take(throttle, clock)
    clock.now = 1.0
    assert take(throttle, clock)


def test_a_refusal_counts_as_crowded_when_others_are_in_flight_at_either_end():
    clock = FakeClock(0.0)
    throttle = Throttle(ceiling=8, clock=clock)
    alone = take(throttle, clock)
    assert alone and alone.sent_with == 1 and throttle.load(alone) == 1
    later = take(throttle, clock)  # sent after, but the server may see it first and refuse the other
    assert later and throttle.load(alone) == 2
    throttle.release(alone, Verdict.OVERLOADED, crowded=True)
    assert throttle.limit == 1 and "1 of ours were in flight" in throttle.state.why


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


def test_branches_share_slots_pauses_and_the_limit_but_are_cancelled_alone():
    clock = FakeClock()
    shared = Throttle(2, clock=clock)
    first, second = shared.branch(), shared.branch()
    one, two = take(first, clock), take(second, clock)
    assert one and two
    assert not take(shared, clock)  # both slots are held, whoever asks
    first.release(one, Verdict.OVERLOADED, crowded=True)  # too many at once, seen by one call
    second.pause(5.0)  # a stated wait seen by one call holds back every call
    assert shared.paused_until == first.paused_until == 105.0 and shared.limit == first.limit == 1
    first.interrupt()
    with pytest.raises(Cancelled):
        first.acquire(clock.now)
    with pytest.raises(Cancelled), first.saving():  # nor a new file
        pass
    with second.saving():  # the other call goes on
        pass
    clock.now = 106.0
    second.release(two, Verdict.HEALTHY)
    assert take(second, clock)
