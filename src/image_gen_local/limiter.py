"""How many requests to keep in flight: the decisions, pure (numbers and times in, a new `Limit` out).

Nobody knows how many pictures a server makes at once: Antigravity Tools serves as many as its accounts
allow and refuses the rest at once (429 "All accounts exhausted", 503 `MODEL_CAPACITY_EXHAUSTED`); other
servers accept everything and serve a few at a time, so answers just get slower. A fixed concurrency is
either too low (idle capacity) or too high (most requests refused, or piled in a queue). So the limit is
learned while the batch runs, the way TCP learns a path's capacity, with the signals each kind of server
gives (README, "How many at once", says what was borrowed from whom and why):

- **Slow start** (TCP): begin at START; one more per healthy answer (twice as many every round of
  answers), and, before the first answer, one more each time the newest request has gone ACCEPTED_AFTER
  without being refused (a refusing server refuses at once), up to BLIND_LIMIT.
- **A refusal while others of ours were in flight** means too many at once: the limit becomes the number
  that was in flight without it. Sharper than TCP's halving because the server answers at once, so the
  count is exact. The refused picture waits only for a free slot, not a backoff.
- **The knee from latency** (TCP Vegas, Netflix's Gradient2, Envoy's gradient controller): each answer is
  compared with the server's pace for its kind at clearly lower loads: the mean of the answers to
  requests sent with at most 1/KNEE as many of ours in flight, once every request sent at such a load is
  back (the first answers back are the fastest of those sent). Not with the fastest answer ever: real
  servers take 10 s for one picture and 30 s for the next, and against the fastest every round of an
  uneven server looks queued. Not with answers at the same load either: a queue there would be in them.
  By Little's law a server that serves K at once answers KNEE times slower at load n only if K <= n/KNEE,
  so when a round of answers is KNEE times slower than that pace, and slower than the pace's own spread
  explains for a round that size (SPREAD_Z standard errors), the server queues and serves about
  in_flight / slowdown at once. Each such step down is checked on the next round: unless its answers
  came clearly faster (CHECK_Z standard errors of both rounds) or are still slow against the pace (a
  queue the step did not clear: it steps further), the slow round was chance, and everything is put back
  as it was before the step.
- **Probing** (TCP's congestion avoidance): once the server pushed back, one more after PROBE_AFTER rounds
  of healthy answers at full use (a knee from latency is an estimate), or EXACT_PROBE_AFTER rounds when a
  refusal counted the capacity exactly (a probe there costs a refused request and finds more only once the
  server's capacity grew); a refused probe doubles the wait (up to MAX_PROBE_AFTER rounds). A probe
  the server takes means the capacity grew: on a server that refuses at once, each accepted request makes
  room for one more; on one that queues, a round of healthy answers resumes slow start. Below the most the
  server ever took, probes go every round (a lost capacity often comes back), RECOVERY_TRIES times.
- **An overload answer with nothing else of ours in flight** (the server is busy with others, or out of
  quota): one fewer at once per overload event; the picture backs off (retry.py) and a stated long wait
  pauses everyone (throttle.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from statistics import fmean, pvariance

DEFAULT_CEILING = 8  # --concurrency: the most in flight; the limit is learned below it
MAX_CEILING = 16  # the highest --concurrency accepted
START = 2  # requests in flight before anything is known
BLIND_LIMIT = 6  # growth before any answer stops here: a queueing server cannot be told from a fast one
ACCEPTED_AFTER = 0.1  # a request unanswered this long was accepted (refusals come at once)
KNEE = 1.3  # answers this much slower than at lower loads mean a queue
MIN_QUEUE_DELAY = 0.1  # ... and at least this many seconds slower: a queue of pictures adds more
PROBE_AFTER = 3  # rounds of healthy answers at full use before one more is tried
EXACT_PROBE_AFTER = 8  # ... after a refusal counted the capacity exactly
MAX_PROBE_AFTER = 16
RECOVERY_TRIES = 4  # refused probes in a row below the most ever taken before that is forgotten
ROUND_MIN, ROUND_MAX = 3, 8  # answers judged together for the knee
PACE_MEMORY = 32  # answers per kind and load that the pace remembers (older ones weigh less and less)
SPREAD_Z = 4.0  # a round is a queue only when this many standard errors slower than the pace
CHECK_Z = 2.0  # after a step down, the next round must be this many standard errors faster, or it is undone
UNDO_UNLESS = 0.85  # ... or, with no pace to judge it against, this much faster
MIN_SPREAD = 0.2  # pictures take at least this much longer or shorter than the mean by themselves


class Verdict(str, Enum):
    HEALTHY = "healthy"  # a verified picture
    OVERLOADED = "overloaded"  # 429, 503 capacity
    OTHER = "other"  # anything else: says nothing about load


@dataclass(frozen=True)
class Answer:
    """How one request ended, as the limiter needs it."""

    verdict: Verdict
    sent_with: int  # our requests in flight when it was sent, itself included
    seconds: float = 0.0  # from sending to the answer's last byte
    key: str = ""  # what kind of request (the tier): latencies are compared within a kind
    crowded: bool = False  # overloaded while others of ours were in flight, no wait stated
    wait: float = 0.0  # an uncrowded overload event lasts this long (one step down per event)


@dataclass(frozen=True)
class Sample:
    """One healthy answer of a round, with what it is judged against."""

    seconds: float
    sent_with: int
    key: str = ""
    pace: float | None = None  # mean seconds of its kind at clearly lower loads; None while unknown
    spread: float = 0.0  # their coefficient of variation

    @property
    def slowdown(self) -> float:
        return self.seconds / self.pace if self.pace else 1.0

    @property
    def extra(self) -> float:
        return self.seconds - self.pace if self.pace else 0.0


@dataclass(frozen=True)
class Limit:
    ceiling: int
    value: int
    probing: bool = False  # False: slow start
    found: int | None = None  # where the server last pushed back (or the last probe it took)
    refuses: bool = False  # it refused a request for too many in flight: it answers overload at once
    high: int = 0  # the most it has taken at once: below that, a lost capacity is probed for every round
    missed: int = 0  # probes refused in a row
    probe_after: int = PROBE_AFTER  # rounds
    calm: int = 0  # healthy answers at full use since the last change
    base: Mapping[str, float] = field(default_factory=dict)  # fastest healthy answer per kind
    # (kind, ours in flight when sent) -> (answers, mean seconds, sum of squared deviations)
    pace: Mapping[tuple[str, int], tuple[int, float, float]] = field(default_factory=dict)
    window: tuple[Sample, ...] = ()  # the answers of the round under way
    # After a knee step: the state before it, and that round's mean seconds and their squared std. error.
    checking: tuple[Limit, float, float] | None = None
    quiet_until: float = 0.0  # the current uncrowded overload event lasts until then
    since: float = float("-inf")  # when the limit last went down: answers to earlier requests are stale
    why: str = "starting low"


def start(ceiling: int) -> Limit:
    if ceiling < 1:
        raise ValueError("concurrency must be at least 1")
    return Limit(ceiling, min(ceiling, START))


def _climbing(limit: Limit) -> bool:
    """A probe is under way on a server that refuses at once: its acceptance is the answer."""
    return limit.refuses and limit.found is not None and limit.value > limit.found


def blind_wait(limit: Limit, in_flight: int, newest_age: float) -> float | None:
    """Seconds until `blind_step` may grow the limit (0: now); None when it never will from here."""
    starting = not limit.probing and limit.found is None and limit.value < BLIND_LIMIT
    if limit.value >= limit.ceiling or not (starting or _climbing(limit)):
        return None
    if in_flight < limit.value:
        return None  # a slot is free anyway
    return max(0.0, ACCEPTED_AFTER - newest_age)


def blind_step(limit: Limit, in_flight: int, newest_age: float) -> Limit:
    """Before any answer, or while probing a server that refuses at once: one more once the newest request
    has gone ACCEPTED_AFTER without being refused (it was accepted)."""
    if blind_wait(limit, in_flight, newest_age) != 0.0:
        return limit
    if _climbing(limit):
        why = f"{limit.value} accepted at once: the server takes more than before"
        return replace(limit, value=limit.value + 1, found=limit.value, high=max(limit.high, limit.value),
                       missed=0, why=why)  # fmt: skip
    return replace(limit, value=limit.value + 1, why=f"{limit.value} accepted at once")


def answered(limit: Limit, answer: Answer, now: float, pending: Mapping[int, int] | None = None) -> Limit:
    """The limit after `answer` arrived at `now`; `pending`: how many of ours are still in flight, by how
    many were in flight when each was sent."""
    if answer.verdict is Verdict.HEALTHY:
        return _healthy(limit, answer, now, pending or {})
    if answer.verdict is Verdict.OVERLOADED:
        return _crowded(limit, answer, now) if answer.crowded else _overloaded(limit, answer, now)
    return limit


def _crowded(limit: Limit, answer: Answer, now: float) -> Limit:
    edge = max(1, answer.sent_with - 1)
    if now - answer.seconds < limit.since and edge >= limit.value:
        return limit  # sent before the last step down, and says nothing new
    why = f"the server refused a request while {edge} of ours were in flight"
    settled = _settle(limit, min(limit.value, edge), why, now)
    return replace(settled, refuses=True, probe_after=max(settled.probe_after, EXACT_PROBE_AFTER))


def _overloaded(limit: Limit, answer: Answer, now: float) -> Limit:
    if now < limit.quiet_until:  # the same event, seen by another picture
        return replace(limit, quiet_until=max(limit.quiet_until, now + answer.wait))
    # Not a sign of too many in flight (a stated wait, or nothing else of ours running): one fewer for the
    # event, and back up by one per healthy answer once it is over, to where we were.
    why = "the server is overloaded (a wait it stated, or a refusal with nothing else of ours in flight)"
    value = max(1, limit.value - 1)
    # A knee step under check is not judged on answers slowed by the overload: it stands.
    return replace(
        limit,
        value=value,
        calm=0,
        window=(),
        checking=None,
        since=now,
        quiet_until=now + answer.wait,
        why=why,
    )


def _settle(limit: Limit, value: int, why: str, now: float) -> Limit:
    """The server pushed back: hold `value`, and probe only after a while. A refused probe beyond the most
    it ever took doubles the wait for the next; below it (a capacity that was lost may come back), probes
    go every round, until RECOVERY_TRIES of them in a row are refused."""
    probe_after, missed, high = limit.probe_after, 0, max(limit.high, value)
    if limit.probing and limit.value > (limit.found or 0):  # a probe was refused
        missed = limit.missed + 1
        if limit.value > limit.high:
            probe_after = min(MAX_PROBE_AFTER, limit.probe_after * 2)
        elif missed >= RECOVERY_TRIES:
            high = value  # what was lost is not coming back soon
    return replace(
        limit, value=value, probing=True, found=value, probe_after=probe_after, calm=0, window=(),
        checking=None, since=now, high=high, missed=missed, why=why,
    )  # fmt: skip


def _pace(limit: Limit, key: str, load: int, pending: Mapping[int, int]) -> tuple[float | None, float]:
    """Mean seconds of answers of kind `key` sent with at most load / KNEE of ours in flight (where a
    queue would have been visible: by Little's law, answers at `load` are KNEE times slower only if the
    server serves fewer than that), and their coefficient of variation; None while fewer than ROUND_MIN.
    Only loads with nothing `pending`: the first answers back are the fastest of those sent, and a pace
    made of them alone would make every later round look slow."""
    stats = [
        v
        for (kind, sent_with), v in limit.pace.items()
        if kind == key and sent_with * KNEE <= load and not pending.get(sent_with)
    ]
    count = sum(n for n, _, _ in stats)
    if count < ROUND_MIN:
        return None, 0.0
    mean = sum(n * m for n, m, _ in stats) / count
    variance = sum(m2 + n * (m - mean) ** 2 for n, m, m2 in stats) / count
    return mean, max(MIN_SPREAD, math.sqrt(variance) / mean)


def _paced(limit: Limit, answer: Answer) -> Limit:
    """The fastest answer of its kind, and its place in the pace (Welford's running mean and variance,
    its count capped so that the pace follows a server that gets slower or faster)."""
    fastest = min(answer.seconds, limit.base.get(answer.key, math.inf))
    slot = (answer.key, answer.sent_with)
    count, mean, m2 = limit.pace.get(slot, (0, 0.0, 0.0))
    if count >= PACE_MEMORY:
        count, m2 = count - 1, m2 * (count - 1) / count
    count += 1
    delta = answer.seconds - mean
    mean += delta / count
    m2 += delta * (answer.seconds - mean)
    pace = {**limit.pace, slot: (count, mean, m2)}
    return replace(limit, base={**limit.base, answer.key: fastest}, pace=pace)


def _healthy(limit: Limit, answer: Answer, now: float, pending: Mapping[int, int]) -> Limit:
    pace = _pace(limit, answer.key, answer.sent_with, pending)
    sample = Sample(answer.seconds, answer.sent_with, answer.key, *pace)
    if answer.seconds > 0:
        limit = _paced(limit, answer)  # every answer tells the pace at its load, even a stale one
    if now - answer.seconds <= limit.since or now < limit.quiet_until:
        return limit  # sent before the last change (it shows the old load), or an overload is not over
    window = (*limit.window, sample)[-_round(limit.value) :]
    limit = replace(limit, window=window)
    if len(window) >= _round(limit.value):
        judged = _judge_round(limit, now)
        if judged.value != limit.value:
            return judged
        limit = judged
    slow = sample.slowdown >= KNEE and sample.extra >= MIN_QUEUE_DELAY
    if slow or answer.sent_with * 2 < limit.value:
        return limit  # a slow answer never makes room for more, nor one while little is used
    if not limit.probing:
        return _grow(limit)
    if limit.found is not None and limit.value < limit.found:
        return _grow(limit, "the overload is over")  # back to where the server pushed back last
    if limit.value > (limit.found or 0):
        return limit  # a probe is under way: its round decides
    calm = limit.calm + (answer.sent_with >= limit.value)
    rounds = 1 if limit.high > limit.value else limit.probe_after
    if calm >= rounds * limit.value and limit.value < limit.ceiling:
        why = f"probing: {limit.value + 1} at once"
        return replace(limit, value=limit.value + 1, calm=0, window=(), since=now, why=why)
    return replace(limit, calm=calm)


def _grow(limit: Limit, why: str = "answers are healthy") -> Limit:
    """Slow start: one more per healthy answer, so twice as many every round."""
    if limit.value >= limit.ceiling:
        return limit
    return replace(limit, value=limit.value + 1, why=why)


def _round(value: int) -> int:
    """How many answers make a round to judge: enough to average out an uneven server, few enough that a
    queue is seen within about one latency."""
    return min(value, max(ROUND_MIN, min(ROUND_MAX, value // 2)))


def _judge_round(limit: Limit, now: float) -> Limit:
    """A full round of answers since the last change: a queue, a step down that did not help, or a probe
    taken."""
    window = limit.window
    limit = replace(limit, window=())
    slowdown = fmean(sample.slowdown for sample in window)
    if fmean(sample.extra for sample in window) < MIN_QUEUE_DELAY:
        slowdown = 1.0  # a few milliseconds more is our own machine or the network, not a queue
    # An uneven server's round is slower than its pace by chance now and then: a queue only when it is
    # slower than the pace's spread explains for a round this size.
    knee = max(KNEE, 1 + SPREAD_Z * fmean(sample.spread for sample in window) / math.sqrt(len(window)))
    in_flight = fmean(sample.sent_with for sample in window)
    seconds = [sample.seconds for sample in window]
    mean, error = fmean(seconds), pvariance(seconds) / len(seconds)
    if limit.checking is not None:
        before, then, then_error = limit.checking
        faster = then - mean > CHECK_Z * math.sqrt(then_error + error)
        # Still slow against the pace: a queue the step did not clear (it may step further). Without a
        # pace to tell, a round UNDO_UNLESS times the one before counts as faster too.
        paced = any(sample.pace for sample in window)
        still = slowdown >= knee or (not paced and mean < then * UNDO_UNLESS)
        if not (faster or still):
            return _undo(limit, before, now)
        limit = replace(limit, checking=None)
    if slowdown >= knee and in_flight >= 2:
        value = max(1, math.floor(in_flight / slowdown + 0.5))  # Little's law: what it serves at once
        if value < limit.value:
            why = f"answers {slowdown:.1f}x slower with {in_flight:.0f} in flight: it queues beyond ~{value}"
            return replace(_settle(limit, value, why, now), checking=(limit, mean, error))
    elif limit.probing and limit.value > (limit.found or 0):
        why = f"{limit.value} at once answered fine: the server takes more than before"
        taken = replace(limit, probing=False, found=limit.value, high=max(limit.high, limit.value), missed=0)
        return _grow(replace(taken, calm=0), why)
    return limit


def _undo(limit: Limit, before: Limit, now: float) -> Limit:
    """Answers got no faster with fewer in flight: no queue, the server's own pace. Everything back as it
    was before the step (the limit, what was found, slow start or probing)."""
    why = "answers got no faster with fewer in flight: the server's own pace, not a queue"
    return replace(
        before, base=limit.base, pace=limit.pace, window=(), since=now, quiet_until=limit.quiet_until, why=why
    )


def describe(limit: Limit, peak: int) -> str:
    """What the run found, for the summary: `peak` is the most in flight that answered healthy."""
    if limit.found is None:
        ceiling = " (the ceiling, --concurrency)" if peak >= limit.ceiling else ""
        busy = "; the server was busy with others at times" if limit.probing else ""
        return f"up to {peak} at once answered fine{ceiling}, the server never refused more{busy}"
    if limit.probing:
        return f"the server takes {limit.found} at once (the batch settled there; ceiling {limit.ceiling})"
    return f"the server takes at least {limit.found} at once (ceiling {limit.ceiling})"
