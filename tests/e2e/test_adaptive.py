"""The batch finds the server's capacity by itself: real commands against the emulator at a set capacity.

Behaviour only (what the server saw, what the commands said), never timing: the benchmarks in
bench/capacity.py measure how close to ideal it gets.
"""

from __future__ import annotations

import itertools
import re
import threading
from pathlib import Path

from helpers import cli, start_script, wait_until
from image_gen_local.emulator import Emulator


def jobs(tmp_path: Path, count: int, name: str = "jobs.txt", words: str = "of the set") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"picture {i} {words}\n" for i in range(count)))
    return path


def batch(emu: Emulator, tmp_path: Path, count: int, *flags: str):
    out = str(tmp_path / "out")
    return cli("batch", str(jobs(tmp_path, count)), "--base-url", emu.root_url, "--output-dir", out, *flags)


def image_posts(emu: Emulator) -> list:
    return [r for r in emu.requests if r.route == "generations"]


def refused(emu: Emulator) -> int:
    return sum(1 for r in image_posts(emu) if r.status in (429, 503))


def found(stderr: str) -> int:
    """The capacity the batch summary says it settled on."""
    match = re.search(r"the server takes (\d+) at once", stderr)
    assert match, stderr
    return int(match.group(1))


def test_a_batch_converges_on_what_a_refusing_server_takes(make_emulator, tmp_path):
    emu = make_emulator(capacity=3, latency=0.3)
    run = batch(emu, tmp_path, 15, "-v")
    assert run.code == 0 and len(run.paths) == 15, run.stderr
    assert found(run.stderr) == 3
    assert refused(emu) <= 3  # found by one or two refusals, not by hammering
    assert "concurrency 4 -> 3: the server refused a request while 3 of ours were in flight" in run.stderr
    # the refused picture is named by its job's line, not as "picture 1 of 1" of an unnamed prompt
    assert re.search(r"line \d+ \('picture \d+ of the set'\), picture 1 of 1: refused", run.stderr)


def test_a_503_capacity_answer_is_read_the_same_way(make_emulator, tmp_path):
    emu = make_emulator(capacity=2, capacity_status=503, latency=0.3)
    run = batch(emu, tmp_path, 10)
    assert run.code == 0 and len(run.paths) == 10 and found(run.stderr) == 2
    assert refused(emu) <= 3


def test_a_refusal_among_others_is_retried_at_once_not_after_a_backoff(make_emulator, tmp_path):
    emu = make_emulator(capacity=1, latency=0.3)
    run = batch(emu, tmp_path, 4)
    assert run.code == 0 and found(run.stderr) == 1
    posts = sorted(image_posts(emu), key=lambda r: r.received)
    [refusal] = [r for r in posts if r.status == 429]
    following = [r for r in posts if r.received > refusal.answered]
    # the refused picture went next, as soon as a place was free: not after a backoff, during which the
    # two pictures not yet started would have gone first
    assert following[0].body["prompt"] == refusal.body["prompt"]
    assert following[0].status == 200


def test_a_pictures_timeout_starts_when_it_is_sent_not_while_it_waits_for_its_turn(make_emulator, tmp_path):
    emu = make_emulator(capacity=1, latency=0.3)
    run = batch(emu, tmp_path, 12, "--timeout", "2")  # twelve pictures one at a time take longer than 2 s
    assert run.code == 0 and len(run.paths) == 12, run.stderr
    assert found(run.stderr) == 1


def test_refusals_for_too_many_in_flight_do_not_count_as_retries(make_emulator, tmp_path):
    emu = make_emulator(capacity=1, latency=0.3)
    run = batch(emu, tmp_path, 6, "--retries", "0")
    assert run.code == 0 and len(run.paths) == 6, run.stderr
    assert refused(emu) >= 1 and found(run.stderr) == 1  # refused, and the summary says what it learned


def test_the_batch_backs_off_when_the_capacity_drops_and_follows_it_back_up(make_emulator, tmp_path):
    emu = make_emulator(capacity=4, latency=0.3)

    def drop_then_restore() -> None:
        wait_until(lambda: sum(1 for r in image_posts(emu) if r.status == 200) >= 8)
        emu.gate.configure(capacity=1)
        wait_until(lambda: sum(1 for r in image_posts(emu) if r.status == 200) >= 16)
        emu.gate.configure(capacity=4)

    changer = threading.Thread(target=drop_then_restore, daemon=True)
    changer.start()
    run = batch(emu, tmp_path, 40, "-v")
    changer.join(timeout=30)
    assert run.code == 0 and len(run.paths) == 40, run.stderr
    assert "-> 1: the server refused a request while 1 of ours were in flight" in run.stderr
    assert re.search(r"concurrency [1-3] -> [2-4]: \d (accepted at once|at once answered fine)", run.stderr)
    assert refused(emu) <= 15  # each refusal taught something: no storm of retries


def test_it_never_exceeds_the_ceiling(make_emulator, tmp_path):
    emu = make_emulator(capacity=6, latency=0.3)
    run = batch(emu, tmp_path, 12, "--concurrency", "2")
    assert run.code == 0 and emu.gate.describe()["peak"] == 2 and refused(emu) == 0
    assert "up to 2 at once answered fine (the ceiling, --concurrency)" in run.stderr


def test_a_queueing_server_is_not_piled_up_beyond_its_knee(make_emulator, tmp_path):
    emu = make_emulator(capacity=2, queue=True, latency=0.3)
    run = batch(emu, tmp_path, 24, "-v")
    assert run.code == 0 and len(run.paths) == 24 and refused(emu) == 0
    assert re.search(r"answers [0-9.]+x slower with \d+ in flight: it queues beyond ~[23]\b", run.stderr)
    assert found(run.stderr) <= 3  # settled at the knee, far below the ceiling of 8
    assert emu.gate.describe()["waiting"] == 0


def test_count_backs_off_on_a_busy_server_too(make_emulator, tmp_path):
    emu = make_emulator(capacity=2, latency=0.3)
    run = cli("a fox", "-n", "6", "-v", "--base-url", emu.root_url, "--output-dir", str(tmp_path / "out"))
    assert run.code == 0 and len(run.paths) == 6, run.stderr
    assert refused(emu) <= 3 and emu.gate.describe()["peak"] == 2
    assert found(run.stderr) == 2  # -v says what it found, as a batch's summary does


def test_two_processes_share_a_server_without_collapsing_to_one_at_a_time(make_emulator, tmp_path):
    emu = make_emulator(capacity=4, latency=0.3)
    env = {"IMAGE_GEN_BASE_URL": emu.root_url}
    files = [str(jobs(tmp_path, 12, f"jobs-{i}.txt")) for i in range(2)]
    procs = [
        start_script("batch", name, "--output-dir", str(tmp_path / f"out-{i}"), env=env)
        for i, name in enumerate(files)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    served = [r for r in image_posts(emu) if r.status == 200]
    assert len(served) == 24
    busiest = max(sum(1 for o in served if o.admitted <= r.admitted < o.answered) for r in served)
    assert busiest >= 3  # together they kept the server busy, neither fell back to one at a time
    assert refused(emu) <= 12


def test_a_process_that_starts_on_a_full_server_waits_its_turn_without_hammering_it(make_emulator, tmp_path):
    emu = make_emulator(capacity=3, latency=0.6)
    env = {"IMAGE_GEN_BASE_URL": emu.root_url}
    first = jobs(tmp_path, 24, "first.txt", "of the first set")
    second = jobs(tmp_path, 12, "second.txt", "of the second set")
    early = start_script("batch", str(first), "--output-dir", str(tmp_path / "out-1"), env=env)
    wait_until(lambda: sum(1 for r in image_posts(emu) if r.status == 200) >= 6)  # the first one settled
    late = start_script("batch", str(second), "--output-dir", str(tmp_path / "out-2"), env=env)
    results = [proc.communicate(timeout=120) for proc in (early, late)]
    assert [early.returncode, late.returncode] == [0, 0], results

    def refused(words: str) -> list:
        return sorted((r for r in image_posts(emu) if r.status == 429 and words in r.body.get("prompt", "")),
                      key=lambda r: r.received)  # fmt: skip

    first_done = [
        r.answered for r in image_posts(emu) if r.status == 200 and "first set" in r.effective_prompt
    ]
    late = refused("second set")
    # Refused with nothing else of its own in flight, the late process holds all its requests back for
    # about one picture's time, so another refusal comes only after the first process made room at least
    # once (its opening requests aside: two sent at once, and the refused one asked again at once). Before
    # it held back, each worker thread asked on its own: a dozen refusals in a row.
    in_a_row = sum(
        1
        for one, then in itertools.pairwise(late)
        if not any(one.received < t < then.received for t in first_done)
    )
    assert in_a_row <= 3 and len(refused("first set")) <= 10, (in_a_row, len(late), len(refused("first set")))
