"""The batch engine and `image-gen batch`, against the real emulator: resume, shared backoff, stop rules."""

from __future__ import annotations

import base64
import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers import (
    RawServer,
    cli,
    http_response,
    markers,
    picture,
    png_bytes,
    run_script,
    start_script,
    wait_until,
    write_picture,
)
from image_gen_local import BatchOptions, Settings, run_batch
from image_gen_local.files import TEMP_PREFIX
from image_gen_local.manifest import Manifest


def write_jobs(path: Path, *lines: str | dict) -> Path:
    path.write_text(
        "\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n", encoding="utf-8"
    )
    return path


def posts(emu):
    return [r for r in emu.requests if r.route in ("generations", "edits", "chat")]


def batch(emu, out: Path, *args: str):
    return cli("batch", *args, "--base-url", emu.root_url, "--output-dir", str(out))


def test_jsonl_and_text_lines_with_options(emulator, tmp_path):
    write_picture(tmp_path / "photo.png", (800, 600))
    jobs = write_jobs(
        tmp_path / "story.jsonl",
        "# comments and blank lines are skipped",
        "",
        {"prompt": "a fox in a forest", "aspect_ratio": "16:9"},
        {"prompt": "the fox at a river", "resolution": "2k", "count": 2},
        {"prompt": "the fox in anime style", "image": "photo.png"},  # relative to the batch file
        "a plain text prompt",
        {"prompt": "the end", "output": "ending.png"},
    )
    out = tmp_path / "out"
    run = batch(emulator, out, str(jobs), "--concurrency", "3")
    assert run.code == 0, run.stderr
    paths = run.paths
    assert len(paths) == 6 and len(set(paths)) == 6
    sizes = sorted(picture(p).size for p in paths)
    assert (1376, 768) in sizes and sizes.count((2048, 2048)) == 2 and (1200, 896) in sizes
    assert (tmp_path / "ending.png").exists()
    edits = [r for r in posts(emulator) if r.route == "edits"]
    assert len(edits) == 1 and edits[0].files[0][1] == "image/png"
    records = list(Manifest(out / "story.manifest.jsonl").records())
    assert sum(r["type"] == "picture" for r in records) == 6
    jobs_done = [r for r in records if r["type"] == "job"]
    assert len(jobs_done) == 5 and all(r["status"] == "ok" for r in jobs_done)
    assert {tuple(s) for r in jobs_done for s in r["sizes"]} >= {(1376, 768), (2048, 2048)}
    assert "5 of 5 job(s) done" in run.stderr


def test_rerun_resumes_without_any_request(emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.txt", "one", "two", "three")
    out = tmp_path / "out"
    first_run = batch(emulator, out, str(jobs))
    assert first_run.code == 0
    sent = len(posts(emulator))
    again = batch(emulator, out, str(jobs))
    assert again.code == 0 and sorted(markers(again.stdout)) == sorted(markers(first_run.stdout))
    assert len(posts(emulator)) == sent
    assert "3 already done before" in again.stderr
    # a new line and a deleted picture: only those two are asked for
    write_jobs(jobs, "one", "two", "three", "four")
    first = next(out.glob("*-one.png"))
    first.unlink()
    third = batch(emulator, out, str(jobs))
    assert third.code == 0
    # every picture of the jobs is listed; only the two missing ones were asked for
    assert sorted(p.name.split("-", 2)[2] for p in third.paths) == [
        "four.png",
        "one.png",
        "three.png",
        "two.png",
    ]
    assert len(posts(emulator)) == sent + 2


def test_failed_jobs_are_retried_on_the_next_run(emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.txt", "alpha", "beta", "gamma")
    out = tmp_path / "out"
    emulator.script("ok", "content-filter")  # the second picture is refused
    first = batch(emulator, out, str(jobs), "--concurrency", "1")
    assert first.code == 6
    assert len(first.paths) == 2 and "failed: line 2" in first.stderr and "rephrase" in first.stderr
    failed = [r for r in Manifest(out / "jobs.manifest.jsonl").records() if r.get("status") == "failed"]
    assert failed[0]["error"]["class"] == "no_image" and failed[0]["error"]["exit_code"] == 6
    sent = len(posts(emulator))
    second = batch(emulator, out, str(jobs))
    assert second.code == 0 and len(second.paths) == 3  # every picture of the jobs, the earlier ones too
    assert [p for p in second.paths if p.name.endswith("-beta.png")] and len(posts(emulator)) == sent + 1


def test_bad_lines_are_reported_before_any_request(emulator, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        "fine",
        '{"prompt": "x", "colour": "red"}',
        '{"prompt": ',
        '{"resolution": "2k"}',
        '{"prompt": "y", "size": "0x0"}',
    )
    run = batch(emulator, tmp_path / "out", str(jobs))
    assert run.code == 2 and run.stdout == ""
    line = run.stderr.strip()
    assert (
        "4 bad line(s)" in line
        and "line 2: unknown option 'colour'" in line
        and "line 3: not valid JSON" in line
    )
    assert "nothing was sent" in line and len(line.splitlines()) == 1
    assert posts(emulator) == [] and not (tmp_path / "out").exists()


def test_stdin_and_json(emulator, tmp_path):
    run = cli(
        "batch",
        "-",
        "--base-url",
        emulator.root_url,
        "--output-dir",
        str(tmp_path / "out"),
        "--json",
        "-n",
        "2",
        "--aspect-ratio",
        "3:4",
        stdin="first\nsecond\n",
    )
    assert run.code == 0, run.stderr
    doc = run.json
    assert doc["jobs"] == {"total": 2, "ok": 2, "skipped": 0, "failed": 0}
    assert len(doc["images"]) == 4 and {(i["width"], i["height"]) for i in doc["images"]} == {(896, 1200)}
    assert doc["manifest"].endswith("stdin.manifest.jsonl")


def test_a_429_slows_the_whole_batch_down(emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.txt", *[f"picture {i}" for i in range(8)])
    emulator.script("429-retry-delay:0.3")
    run = batch(emulator, tmp_path / "out", str(jobs), "--concurrency", "4")
    assert run.code == 0, run.stderr
    assert len(run.paths) == 8
    assert "concurrency lowered 1 time(s)" in run.stderr


def test_a_long_stated_wait_pauses_every_new_request(emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.txt", *[f"picture {i}" for i in range(6)])
    emulator.script("429-retry-after:2.5")
    run = batch(emulator, tmp_path / "out", str(jobs), "--concurrency", "3")
    assert run.code == 0 and len(run.paths) == 6
    assert "paused 1 time(s) as the server asked" in run.stderr
    fault = next(r for r in emulator.requests if r.fault)
    assert fault.status == 429
    # Requests already under way may still arrive just after it; after that, none until the 2.5 s are over.
    during = [r for r in posts(emulator) if fault.answered + 0.5 < r.received < fault.answered + 2.5]
    assert during == []


def test_library_run_batch_shares_the_engine(emulator, tmp_path):
    lines = ["a", '{"prompt": "b", "count": 2}']
    result = run_batch(
        lambda: iter(lines),
        Settings(base_url=emulator.base_url, output_dir=tmp_path / "out"),
        BatchOptions(concurrency=2),
        name="lib.jsonl",
    )
    assert (
        result.outcome.succeeded == 2
        and result.outcome.pictures == 3
        and result.jobs == 2
        and result.pictures == 3
    )
    assert result.manifest == (tmp_path / "out" / "lib.manifest.jsonl").resolve()


def test_fail_fast_stops_at_the_first_failure(emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.txt", *[f"job {i}" for i in range(6)])
    emulator.script("content-filter")
    run = batch(emulator, tmp_path / "out", str(jobs), "--concurrency", "1", "--fail-fast")
    assert run.code == 6 and run.paths == []
    assert "not attempted" in run.stderr and len(posts(emulator)) == 1


def test_unusable_server_stops_the_batch_without_fail_fast(emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.txt", *[f"job {i}" for i in range(6)])
    emulator.script("403-validation")
    run = batch(emulator, tmp_path / "out", str(jobs), "--concurrency", "1")
    assert run.code == 4 and len(posts(emulator)) == 1


def test_exit_code_is_the_most_serious_failure(emulator, tmp_path):
    photo = tmp_path / "notes.png"
    photo.write_text("not a picture")
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", {"prompt": "bad input", "image": "notes.png"}, "refused", "fine"
    )
    emulator.script("content-filter")
    run = batch(emulator, tmp_path / "out", str(jobs), "--concurrency", "1")
    assert run.code == 6  # no picture (6) is more serious than a bad input picture (7)
    assert "failed: line 1" in run.stderr and "failed: line 2" in run.stderr and len(run.paths) == 1


def test_rate_cap_and_retries_options(emulator, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.txt", "a", "b", "c")
    emulator.script("500")  # whichever picture gets it has no retry left
    run = batch(
        emulator, tmp_path / "out", str(jobs), "--rate", "600/min", "--retries", "0", "--concurrency", "1"
    )
    assert run.code == 5 and "still failing after 1 attempt(s)" in run.stderr
    assert len(run.paths) == 2 and len(posts(emulator)) == 3
    for bad in (
        ["--rate", "fast"],
        ["--rate", "nan/min"],
        ["--retries", "-1"],
        ["--concurrency", "0"],
        ["--concurrency", "99"],
    ):
        assert batch(emulator, tmp_path / "out", str(jobs), *bad).code == 2


def test_killed_batch_loses_only_pictures_in_flight(make_emulator, tmp_path):
    emu = make_emulator(latency=0.4)
    jobs = write_jobs(tmp_path / "jobs.txt", *[f"kill test {i}" for i in range(12)])
    out = tmp_path / "out"
    env = {"IMAGE_GEN_BASE_URL": emu.root_url, "IMAGE_GEN_OUTPUT_DIR": str(out)}
    proc = start_script("batch", str(jobs), "--concurrency", "2", env=env)
    wait_until(lambda: len([r for r in emu.requests if r.status == 200 and r.route == "generations"]) >= 4)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "Traceback" not in stderr
    first = markers(stdout)
    assert not [p for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]
    for path in out.glob("*.png"):
        picture(path)  # every file complete
    rerun = run_script("batch", str(jobs), env=env)
    assert rerun.returncode == 0, rerun.stderr
    second = markers(rerun.stdout)
    assert len(second) == 12 and set(first) <= set(second)  # the rerun lists every picture of the jobs
    assert len(list(out.glob("*.png"))) == 12  # nothing recorded was redone


def overlapping(requests) -> int:
    """The most requests the server was working on at the same moment."""
    return max(sum(1 for o in requests if o.received <= r.received < o.answered) for r in requests)


def test_plain_count_runs_as_many_at_once_as_the_server_takes_up_to_the_count(make_emulator, tmp_path):
    emu = make_emulator(latency=0.5)
    run = cli("pair", "-n", "4", "--base-url", emu.root_url, "--output-dir", str(tmp_path / "out"))
    assert run.code == 0 and len(run.paths) == 4
    assert overlapping(posts(emu)) == 4  # a server that never pushes back gets all four at once


def test_batch_keeps_the_server_exactly_as_busy_as_asked(make_emulator, tmp_path):
    emu = make_emulator(latency=0.4)
    jobs = write_jobs(tmp_path / "jobs.txt", *[f"busy {i}" for i in range(12)])
    run = batch(emu, tmp_path / "out", str(jobs), "--concurrency", "3")
    assert run.code == 0 and len(run.paths) == 12
    assert overlapping(posts(emu)) == 3  # never more than asked, though twice as many threads run


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_empty_batch_is_a_usage_error(emulator, tmp_path, text):
    path = tmp_path / "empty.txt"
    path.write_text(text)
    run = batch(emulator, tmp_path / "out", str(path))
    assert run.code == 2 and "holds no jobs" in run.stderr


def test_fail_fast_also_cuts_a_retry_wait_short(emulator, tmp_path):
    """A picture waiting 30 s to retry must not keep the batch alive once another one failed for good."""
    import threading

    from image_gen_local.batch import Job, run_jobs
    from image_gen_local.engine import Generator
    from image_gen_local.request import ImageRequest, prepare
    from image_gen_local.retry import RetryPolicy
    from image_gen_local.throttle import Throttle

    settings = Settings(base_url=emulator.base_url, output_dir=tmp_path / "out")
    generator = Generator(
        settings,
        warn=lambda _line: None,
        policy=RetryPolicy(first_retry=30.0),
        throttle=Throttle(2),
    )
    emulator.script("500", "content-filter")
    jobs = [Job(prepared=prepare(ImageRequest(name), settings)) for name in ("waits", "refused")]
    outcome: list = []
    worker = threading.Thread(
        target=lambda: outcome.append(run_jobs(generator, jobs, BatchOptions(concurrency=2, fail_fast=True)))
    )
    worker.start()
    worker.join(timeout=20)
    generator.close()
    assert not worker.is_alive(), "the batch kept waiting for a retry after fail-fast"
    assert outcome[0].exit_code == 6 and len(posts(emulator)) == 2


def test_lines_that_prepare_would_refuse_are_caught_before_any_request(emulator, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        "fine",
        {"prompt": "two files into one", "count": 2, "output": "one.png"},
        {"prompt": "x" * 40_000},
        {"prompt": "too many", "image": ["a.png"] * 15},
        {"prompt": "too big", "size": "99999x99999"},
    )
    run = batch(emulator, tmp_path / "out", str(jobs))
    assert run.code == 2 and "4 bad line(s)" in run.stderr and "nothing was sent" in run.stderr
    assert posts(emulator) == []


def test_a_manifest_that_cannot_be_used_is_an_output_error(emulator, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    jobs = write_jobs(tmp_path / "jobs.txt", "one")
    for manifest in (blocker / "m.jsonl", tmp_path):
        run = batch(emulator, tmp_path / "out", str(jobs), "--manifest", str(manifest))
        assert run.code == 9 and "manifest" in run.stderr and "unexpected" not in run.stderr


def test_more_than_ten_pictures_are_asked_for_at_once_when_the_concurrency_allows(tmp_path):
    """The HTTP pool held every --concurrency above 10 at 10 (the library's default) until it was sized.
    Slow start sends 6 before any answer and doubles per round, so 30 jobs reach 12 at once in round two."""
    lock, state = threading.Lock(), {"now": 0, "most": 0}
    picture_b64 = base64.b64encode(png_bytes((64, 64))).decode()
    answer = http_response(200, json.dumps({"data": [{"b64_json": picture_b64}]}))

    def handler(conn: socket.socket, path: str, body: bytes) -> None:
        if path.endswith("/models"):
            conn.sendall(http_response(404, ""))
            return
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(1.0)
        with lock:
            state["now"] -= 1
        conn.sendall(answer)

    server = RawServer(handler)
    try:
        jobs = write_jobs(tmp_path / "jobs.txt", *(f"picture {n}" for n in range(30)))
        args = ["batch", str(jobs), "--concurrency", "14", "--base-url", server.url]
        run = cli(*args, "--output-dir", str(tmp_path / "out"), "--timeout", "60")
    finally:
        server.close()
    assert run.code == 0 and len(run.paths) == 30, run.stderr
    assert state["most"] > 10, state
