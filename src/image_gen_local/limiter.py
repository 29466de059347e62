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
- **The knee from latency** (TCP Vegas, Netflix's Gradient2, Envoy's gradient controller): answers are
  compared with the fastest one of their kind; when a round of them is on average KNEE times slower, the
  server queues, and Little's law says it serves about in_flight / slowdown at once. Each step down is
  checked: if answers stay as slow with fewer in flight, it was the server's own pace, not a queue, and
  the step is undone.
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
from statistics import fmean

DEFAULT_CEILING = 8  # --concurrency: the most in flight; the limit is learned below it
MAX_CEILING = 16  # the highest --concurrency accepted
START = 2  # requests in flight before anything is known
BLIND_LIMIT = 6  # growth before any answer stops here: a queueing server cannot be told from a fast one
ACCEPTED_AFTER = 0.1  # a request unanswered this long was accepted (refusals come at once)
KNEE = 1.3  # answers this much slower than the fastest of their kind mean a queue
MIN_QUEUE_DELAY = 0.1  # ... and at least this many seconds slower: a queue of pictures adds more
UNDO_UNLESS = 0.85  # after a knee step, answers must get this much faster, or it was no queue
PROBE_AFTER = 3  # rounds of healthy answers at full use before one more is tried
EXACT_PROBE_AFTER = 8  # ... after a refusal counted the capacity exactly
MAX_PROBE_AFTER = 16
RECOVERY_TRIES = 4  # refused probes in a row below the most ever taken before that is forgotten
ROUND_MIN, ROUND_MAX = 3, 8  # answers judged together for the knee


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
    window: tuple[tuple[float, int, float], ...] = ()  # the last round: (slowdown, sent_with, extra s)
    checking: tuple[int, float] | None = None  # after a knee step: (limit before, slowdown then)
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


def answered(limit: Limit, answer: Answer, now: float) -> Limit:
    """The limit after `answer` arrived at `now`."""
    if answer.verdict is Verdict.HEALTHY:
        return _healthy(limit, answer, now)
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
    return replace(limit, value=value, calm=0, window=(), since=now, quiet_until=now + answer.wait, why=why)


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


def _healthy(limit: Limit, answer: Answer, now: float) -> Limit:
    base = dict(limit.base)
    fastest = base.get(answer.key)
    if answer.seconds > 0 and (fastest is None or answer.seconds < fastest):
        base[answer.key] = answer.seconds
    slowdown = answer.seconds / fastest if fastest else 1.0
    limit = replace(limit, base=base)
    if now - answer.seconds <= limit.since or now < limit.quiet_until:
        return limit  # sent before the last change (it shows the old load), or an overload is not over
    extra = answer.seconds - fastest if fastest else 0.0
    window = (*limit.window, (slowdown, answer.sent_with, extra))[-_round(limit.value) :]
    limit = replace(limit, window=window)
    if len(window) >= _round(limit.value):
        judged = _judge_round(limit, now)
        if judged is not limit:
            return judged
    if slowdown >= KNEE or answer.sent_with * 2 < limit.value:
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
    """A full round of answers since the last change: a queue, a step that did not help, or a probe taken."""
    slowdown = fmean(s for s, _, _ in limit.window)
    in_flight = fmean(n for _, n, _ in limit.window)
    if fmean(e for _, _, e in limit.window) < MIN_QUEUE_DELAY:
        slowdown = 1.0  # a few milliseconds more is our own machine or the network, not a queue
    if limit.checking is not None:
        before, then = limit.checking
        if slowdown >= KNEE and slowdown > then * UNDO_UNLESS:
            why = f"answers stayed {slowdown:.1f}x slower with fewer in flight: its own pace, not a queue"
            base = {key: seconds * slowdown for key, seconds in limit.base.items()}
            return replace(limit, value=before, base=base, checking=None, window=(), since=now, why=why)
        limit = replace(limit, checking=None)
    if slowdown >= KNEE and in_flight >= 2:
        value = max(1, math.floor(in_flight / slowdown + 0.5))  # Little's law: what it serves at once
        if value < limit.value:
            why = f"answers {slowdown:.1f}x slower with {in_flight:.0f} in flight: it queues beyond ~{value}"
            return replace(_settle(limit, value, why, now), checking=(limit.value, slowdown))
    elif limit.probing and limit.value > (limit.found or 0):
        why = f"{limit.value} at once answered fine: the server takes more than before"
        taken = replace(limit, probing=False, found=limit.value, high=max(limit.high, limit.value), missed=0)
        return _grow(replace(taken, calm=0, window=()), why)
    return limit


def describe(limit: Limit, peak: int) -> str:
    """What the run found, for the summary: `peak` is the most in flight that answered healthy."""
    if limit.found is None:
        ceiling = " (the ceiling, --concurrency)" if peak >= limit.ceiling else ""
        busy = "; the server was busy with others at times" if limit.probing else ""
        return f"up to {peak} at once answered fine{ceiling}, the server never refused more{busy}"
    if limit.probing:
        return f"the server takes {limit.found} at once (the batch settled there; ceiling {limit.ceiling})"
    return f"the server takes at least {limit.found} at once (ceiling {limit.ceiling})"
