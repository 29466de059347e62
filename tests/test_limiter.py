"""The limiter's decision table, and what its rules add up to against simulated servers (no threads)."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest

from image_gen_local import limiter
from image_gen_local.limiter import Answer, Limit, Sample, Verdict

HEALTHY, OVERLOADED, OTHER = Verdict.HEALTHY, Verdict.OVERLOADED, Verdict.OTHER
FRESH = limiter.start(8)
# Eight answers of 1 s each, sent with two of ours in flight: the server's pace at a low load.
PACED = {("1K", 2): (8, 1.0, 0.0)}
# Settled at 3 after the server refused a 4th; answers take 1 s.
SETTLED = replace(FRESH, value=3, probing=True, found=3, base={"1K": 1.0}, pace=PACED, since=0.0)


def judged(seconds: float, sent_with: int = 6, pace: float = 1.0, spread: float = 0.2) -> Sample:
    """An answer already in the round, as the limiter saw it when it came."""
    return Sample(seconds, sent_with, "1K", pace, spread)


CASES = [
    # name, limit before, answer, now, expected fields after
    ("starts at two", FRESH, None, 0.0, {"value": 2, "probing": False}),
    ("a healthy answer in slow start makes room for one more (twice as many per round)", FRESH,
     Answer(HEALTHY, 2, 1.0, "1K"), 1.0, {"value": 3}),
    ("slow start never passes the ceiling", replace(FRESH, value=7), Answer(HEALTHY, 7, 1.0), 1.0,
     {"value": 8}),
    ("an answer while little is used does not grow", replace(FRESH, value=6), Answer(HEALTHY, 2, 1.0), 1.0,
     {"value": 6}),
    ("a refusal among others sets the limit to the others", replace(FRESH, value=6),
     Answer(OVERLOADED, 5, 0.01, crowded=True), 2.0, {"value": 4, "found": 4, "probing": True}),
    ("a stale refusal (sent before the last step down) changes nothing", replace(SETTLED, since=5.0),
     Answer(OVERLOADED, 4, 0.01, crowded=True), 4.5, {"value": 3, "found": 3}),
    ("a refused probe doubles the wait before the next",
     replace(SETTLED, value=4, refuses=True, probe_after=limiter.EXACT_PROBE_AFTER),
     Answer(OVERLOADED, 4, 0.01, crowded=True), 2.0,
     {"value": 3, "probe_after": 2 * limiter.EXACT_PROBE_AFTER}),
    ("a refusal counts the capacity exactly, so the first probe waits longer than after a knee",
     replace(FRESH, value=3), Answer(OVERLOADED, 3, 0.01, crowded=True), 2.0,
     {"value": 2, "probe_after": limiter.EXACT_PROBE_AFTER}),
    ("an overload alone in flight steps down by one", replace(FRESH, value=5),
     Answer(OVERLOADED, 1, 0.5, wait=3.0), 10.0, {"value": 4, "quiet_until": 13.0, "found": None}),
    ("an overload while a knee step is checked ends the check: the step and the overload both stand",
     replace(SETTLED, checking=(replace(FRESH, value=8), 2.0, 0.0)),
     Answer(OVERLOADED, 1, 0.5, wait=30.0), 10.0, {"value": 2, "checking": None, "quiet_until": 40.0}),
    ("the same overload event again changes nothing", replace(FRESH, value=4, probing=True, quiet_until=13.0),
     Answer(OVERLOADED, 1, 0.5, wait=3.0), 11.0, {"value": 4, "quiet_until": 14.0}),
    ("once an overload event is over, back up by one per healthy answer to where the server pushed back",
     replace(SETTLED, value=2, quiet_until=5.0), Answer(HEALTHY, 2, 1.0, "1K"), 6.0, {"value": 3}),
    ("milliseconds slower are neither a queue nor a reason not to grow", replace(
        FRESH, value=6, pace={("1K", 2): (8, 0.01, 0.0)}, window=(judged(0.02, pace=0.01),) * 2),
        Answer(HEALTHY, 6, 0.02, "1K"), 5.0,
     {"value": 7, "probing": False}),
    ("a failure that says nothing about load changes nothing", replace(FRESH, value=5),
     Answer(OTHER, 5, 3.0), 4.0, {"value": 5}),
    ("no growth while an overload event lasts", replace(FRESH, value=3, probing=True, quiet_until=20.0),
     Answer(HEALTHY, 3, 1.0), 10.0, {"value": 3}),
    ("a probe under way: one healthy answer is not enough", replace(SETTLED, value=4),
     Answer(HEALTHY, 4, 1.0, "1K"), 9.0, {"value": 4, "probing": True, "found": 3}),
    ("a probe's round answered healthy: the server takes more, slow start again",
     replace(SETTLED, value=4, window=(judged(1.0, 4), judged(1.1, 4))), Answer(HEALTHY, 4, 1.0, "1K"), 9.0,
     {"value": 5, "probing": False, "found": 4}),
    ("settled: no probe before enough calm answers", replace(SETTLED, calm=3),
     Answer(HEALTHY, 3, 1.0, "1K"), 9.0, {"value": 3, "calm": 4}),
    ("settled: one more after enough calm answers at full use", replace(SETTLED, calm=8),
     Answer(HEALTHY, 3, 1.0, "1K"), 9.0, {"value": 4, "calm": 0}),
    ("a slow answer never makes room", replace(FRESH, value=4, pace=PACED),
     Answer(HEALTHY, 4, 2.0, "1K"), 3.0, {"value": 4}),
    ("a round of slow answers: the server queues, keep what it serves",
     replace(FRESH, value=6, pace=PACED, window=(judged(2.0), judged(2.1))),
        Answer(HEALTHY, 6, 2.0, "1K"), 5.0,
     {"value": 3, "found": 3, "probing": True}),
    ("one slow answer in a round is an uneven server, not a queue",
     replace(FRESH, value=6, pace=PACED, window=(judged(1.0), judged(1.1))),
        Answer(HEALTHY, 6, 1.6, "1K"), 5.0,
     {"value": 6, "probing": False}),
    ("a slow round within what an uneven server's spread explains is not a queue", replace(
        FRESH, value=6, pace={("1K", 2): (8, 1.0, 8 * 0.6**2)}, window=(judged(1.8, spread=0.6),) * 2),
        Answer(HEALTHY, 6, 1.8, "1K"), 5.0,
     {"value": 6, "found": None}),
    ("answers at the same load are no yardstick (a queue there would be in them too)", replace(
        FRESH, value=6, pace={("1K", 6): (8, 2.0, 0.0)}, window=(judged(2.0, pace=None),) * 2),
        Answer(HEALTHY, 6, 2.0, "1K"), 5.0,
     {"value": 7, "found": None}),
    ("a step down after which answers came clearly faster stands", replace(
        SETTLED, checking=(replace(FRESH, value=6), 2.0, 0.0), window=(judged(1.0, 3), judged(1.0, 3))),
        Answer(HEALTHY, 3, 1.0, "1K"), 9.0,
     {"value": 3, "found": 3, "checking": None}),
    ("a step down after which answers came no faster is undone: everything as it was before", replace(
        SETTLED, checking=(replace(FRESH, value=6, pace=PACED), 2.0, 0.1),
        window=(judged(0.5, 3, pace=1.25), judged(2.0, 3, pace=1.25))),
        Answer(HEALTHY, 3, 1.25, "1K"), 9.0,
     {"value": 6, "found": None, "probing": False, "checking": None}),
    ("a step down after which answers are still slow against the pace stands: the queue is deeper", replace(
        SETTLED, checking=(replace(FRESH, value=6, pace=PACED), 2.0, 0.1),
        window=(judged(1.9, 3), judged(2.0, 3))),
        Answer(HEALTHY, 3, 2.0, "1K"), 9.0,
     {"value": 2, "found": 2, "probing": True}),
    ("kinds are compared with their own pace",
     replace(FRESH, value=6, pace={**PACED, ("4K", 2): (8, 4.0, 0.0)}),
     Answer(HEALTHY, 6, 4.0, "4K"), 5.0, {"value": 7}),
    ("an answer to a request sent before the last step down is not judged, but tells the pace at its load",
     replace(SETTLED, since=10.0, window=(judged(2.0, 3), judged(2.0, 3))),
        Answer(HEALTHY, 3, 2.0, "1K"), 11.0,
     {"value": 3, "window": (judged(2.0, 3), judged(2.0, 3)), "pace": {**PACED, ("1K", 3): (1, 2.0, 0.0)}}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "before", "answer", "now", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_decision_table(name, before: Limit, answer: Answer | None, now: float, expected: dict):
    after = before if answer is None else limiter.answered(before, answer, now)
    assert {key: getattr(after, key) for key in expected} == expected, name


def test_before_any_answer_it_grows_one_at_a_time_once_the_newest_was_accepted():
    assert limiter.blind_wait(FRESH, in_flight=1, newest_age=0.0) is None  # a slot is free anyway
    assert limiter.blind_wait(FRESH, in_flight=2, newest_age=0.04) == pytest.approx(0.06)
    assert limiter.blind_step(FRESH, in_flight=2, newest_age=0.04) == FRESH
    grown = limiter.blind_step(FRESH, in_flight=2, newest_age=0.1)
    assert grown.value == 3
    most = replace(grown, value=limiter.BLIND_LIMIT)
    assert limiter.blind_wait(most, in_flight=most.value, newest_age=5.0) is None  # the blind limit
    assert limiter.blind_wait(SETTLED, in_flight=3, newest_age=5.0) is None  # the server already pushed back
    probe = replace(SETTLED, value=4, refuses=True)  # a probe on a server that refuses at once
    taken = limiter.blind_step(probe, in_flight=4, newest_age=0.1)
    assert (taken.value, taken.found) == (5, 4)  # accepted: the server takes more, try one more
    assert limiter.blind_wait(limiter.start(2), in_flight=2, newest_age=5.0) is None  # the ceiling


def test_a_ceiling_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        limiter.start(0)


def test_the_summary_says_what_was_found():
    assert "takes 3 at once" in limiter.describe(SETTLED, peak=3)
    assert "never refused" in limiter.describe(replace(FRESH, value=8), peak=8)
    assert "the ceiling" in limiter.describe(replace(FRESH, value=8), peak=8)


# ------------------------------------------------------------------------------ against simulated servers


def simulate(
    capacity: int,
    ceiling: int,
    jobs: int,
    queue: bool = False,
    pace: Callable[[random.Random], float] = lambda _: 1.0,
    seed: int = 0,
    learn: bool = True,
) -> dict[str, float]:
    """Requests of `pace` seconds against a server that makes `capacity` at once and refuses (at once) or
    queues the rest; every refused picture is asked again when a slot frees. Returns what happened."""
    limit, clock, seq, rng = limiter.start(ceiling), 0.0, 0, random.Random(seed)
    if not learn:  # the limit stays at the ceiling
        limit = replace(limit, value=ceiling)
    events: list[tuple[float, int, str, tuple[int, float]]] = []  # (time, order, what, (sent_with, sent))
    queued: list[tuple[int, float]] = []
    loads: Counter[int] = Counter()  # ours in flight, by how many were in flight when each was sent
    pending, in_flight, serving, newest = jobs, 0, 0, 0.0
    done = refused = sent = most = 0

    def at(time: float, what: str, request: tuple[int, float]) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (time, seq, what, request))

    def send() -> None:
        nonlocal limit, pending, in_flight, serving, newest, sent, refused, most
        limit = limiter.blind_step(limit, in_flight, clock - newest)
        while pending and in_flight < limit.value:
            pending, in_flight, newest, sent = pending - 1, in_flight + 1, clock, sent + 1
            most = max(most, in_flight)
            loads[in_flight] += 1
            request = (in_flight, clock)
            if serving < capacity:
                serving += 1
                at(clock + pace(rng), "answer", request)
            elif queue:
                queued.append(request)
            else:
                refused += 1
                at(clock + 0.01, "refused", request)
            limit = limiter.blind_step(limit, in_flight, clock - newest)
        wait = limiter.blind_wait(limit, in_flight, clock - newest)
        if pending and wait is not None:
            at(clock + max(wait, 1e-6), "tick", (0, clock))

    send()
    for _ in range(100_000):  # bounded
        if done == jobs or not events:
            break
        clock, _, what, (sent_with, sent_time) = heapq.heappop(events)
        if what == "answer":
            in_flight, serving, done = in_flight - 1, serving - 1, done + 1
            loads[sent_with] -= 1
            if learn:
                limit = limiter.answered(limit, Answer(HEALTHY, sent_with, clock - sent_time), clock, loads)
            if queued:
                serving += 1
                at(clock + pace(rng), "answer", queued.pop(0))
        elif what == "refused":
            in_flight, pending = in_flight - 1, pending + 1
            loads[sent_with] -= 1
            limit = limiter.answered(limit, Answer(OVERLOADED, sent_with, 0.01, crowded=sent_with > 1), clock)
        send()
    return {
        "done": done,
        "sent": sent,
        "refused": refused,
        "most": most,
        "settled": limit.value,
        "seconds": clock,
    }


@pytest.mark.parametrize("capacity", [1, 3, 6, 12])
@pytest.mark.parametrize("ceiling", [8, 16])
def test_against_a_refusing_server_it_converges_on_its_capacity_and_few_requests_are_refused(
    capacity, ceiling
):
    result = simulate(capacity, ceiling, jobs=8 * capacity)
    assert result["done"] == 8 * capacity
    assert result["settled"] == min(capacity, ceiling) or result["settled"] == min(capacity, ceiling) + 1
    # one refusal finds K = 1, one refused probe checks it later; beyond, at most one in ten
    assert result["refused"] <= max(2, result["sent"] // 10)
    assert result["most"] <= ceiling


def test_it_never_exceeds_the_ceiling_against_a_server_without_limits():
    result = simulate(capacity=100, ceiling=5, jobs=60)
    assert result["most"] == 5 and result["refused"] == 0 and result["settled"] == 5


@pytest.mark.parametrize("capacity", [1, 3, 6])
def test_against_a_queueing_server_it_settles_at_the_knee(capacity):
    result = simulate(capacity, ceiling=16, jobs=12 * capacity, queue=True)
    assert result["done"] == 12 * capacity and result["refused"] == 0
    assert result["settled"] <= capacity + 1  # latency showed the queue: no pile beyond the knee


UNEVEN = {  # how long one picture takes on servers whose own pace varies (none of them queues)
    "two kinds of picture, 0.5 s and 2 s": lambda rng: 0.5 if rng.random() < 0.5 else 2.0,
    "anything from 10 s to 30 s": lambda rng: rng.uniform(10.0, 30.0),
    "lognormal, a long tail": lambda rng: rng.lognormvariate(0.0, 0.4),
}


@pytest.mark.parametrize("pace", UNEVEN.values(), ids=UNEVEN.keys())
def test_an_uneven_server_without_limits_is_not_taken_for_a_queue(pace):
    runs = [simulate(capacity=100, ceiling=8, jobs=48, pace=pace, seed=seed) for seed in range(10)]
    # the same server and pictures at the ceiling all along: slow start is about all it may cost
    ideal = [simulate(100, 8, 48, pace=pace, seed=seed, learn=False)["seconds"] for seed in range(10)]
    assert sum(run["seconds"] for run in runs) <= 1.25 * sum(ideal)
    assert all(run["settled"] >= 4 for run in runs)  # a false step now and then, never a collapse
