"""The emulator's capacity over real HTTP: refusing beyond K (429 or 503), queueing, K changed live."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request

import pytest

from helpers import cli, serving, wait_until
from image_gen_local.emulator import Emulator, EmulatorConfig
from image_gen_local.upstream import ALL_EXHAUSTED_BODY, CAPACITY_EXHAUSTED_BODY


def ask(emu: Emulator, prompt: str = "a kite", key: str = "") -> tuple[int, str]:
    """One picture request by urllib: (status, body)."""
    body = json.dumps({"model": "gemini-3-pro-image", "prompt": prompt}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(f"{emu.base_url}/images/generations", body, headers)
    try:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
    except (OSError, http.client.HTTPException) as exc:  # the emulator stopped under it
        return 0, repr(exc)


def at_once(emu: Emulator, count: int) -> list[tuple[int, str]]:
    """`count` requests sent together, their answers in order of arrival."""
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        answer = ask(emu, f"picture {i}")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def control(emu: Emulator, body: dict | None = None) -> tuple[int, dict | str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{emu.root_url}/emulator/capacity", data, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def busiest(emu: Emulator) -> int:
    """The most image requests the server worked on at the same moment (from admission to answer)."""
    work = [r for r in emu.requests if r.route == "generations" and r.status == 200]
    return max(sum(1 for o in work if o.admitted <= r.admitted < o.answered) for r in work)


def test_beyond_its_capacity_it_refuses_at_once_with_the_real_servers_429(make_emulator):
    emu = make_emulator(capacity=2, latency=0.5)
    answers = at_once(emu, 5)
    assert sorted(status for status, _ in answers) == [200, 200, 429, 429, 429]
    assert {body for status, body in answers if status == 429} == {ALL_EXHAUSTED_BODY}
    refused = [r for r in emu.requests if r.status == 429]
    served = [r for r in emu.requests if r.status == 200]
    assert max(r.answered for r in refused) < min(r.answered for r in served)  # refused before any finished
    assert emu.gate.describe()["refused"] == 3 and busiest(emu) == 2


def test_a_request_without_the_key_is_turned_away_before_the_capacity_and_takes_no_place(make_emulator):
    emu = make_emulator(capacity=1, latency=0.5, api_key="sk-right")
    holder = threading.Thread(target=ask, args=(emu, "held", "sk-right"))
    holder.start()
    wait_until(lambda: emu.gate.describe()["in_flight"] == 1)
    assert ask(emu, "no key")[0] == 401  # not 429: the key is checked first, like the real server
    holder.join(timeout=30)
    assert ask(emu, "wrong key", "sk-wrong")[0] == 401
    assert emu.gate.describe()["refused"] == 0
    assert ask(emu, "next", "sk-right")[0] == 200  # the turned-away requests left no place taken


def test_the_refusal_can_be_the_503_capacity_answer(make_emulator):
    emu = make_emulator(capacity=1, capacity_status=503, latency=0.5)
    answers = at_once(emu, 3)
    assert sorted(status for status, _ in answers) == [200, 503, 503]
    assert {body for status, body in answers if status == 503} == {CAPACITY_EXHAUSTED_BODY}


def test_a_queueing_server_accepts_everything_and_works_on_k_at_a_time(make_emulator):
    emu = make_emulator(capacity=2, queue=True, latency=0.3)
    answers = at_once(emu, 5)
    assert [status for status, _ in answers] == [200] * 5
    assert busiest(emu) == 2 and emu.gate.describe()["peak"] == 2
    queued = sorted(emu.requests, key=lambda r: r.admitted)[2:]
    assert all(r.admitted > r.received for r in queued)  # the last three waited for a place


def test_the_control_endpoint_shows_and_changes_the_capacity_while_it_runs(make_emulator):
    emu = make_emulator(latency=0.3)
    status, shown = control(emu)
    assert status == 200 and shown == {
        "capacity": None,
        "queue": False,
        "status": 429,
        "in_flight": 0,
        "waiting": 0,
        "peak": 0,
        "served": 0,
        "refused": 0,
    }
    assert sorted(s for s, _ in at_once(emu, 3)) == [200, 200, 200]  # no limit yet
    status, shown = control(emu, {"capacity": 1, "status": 503, "reset": True})
    assert status == 200 and shown["capacity"] == 1 and shown["status"] == 503 and shown["served"] == 0
    assert sorted(s for s, _ in at_once(emu, 3)) == [200, 503, 503]
    status, shown = control(emu, {"capacity": None})
    assert status == 200 and shown["capacity"] is None and shown["refused"] == 2
    for bad in ({"capacity": 0}, {"capacity": "3"}, {"queue": "yes"}, {"status": 500}, {"colour": 1}, [1]):
        status, said = control(emu, bad)  # type: ignore[arg-type]
        assert status == 400 and said, bad


def test_lowering_the_capacity_refuses_new_requests_until_enough_have_finished(make_emulator):
    emu = make_emulator(capacity=3, latency=0.6)
    first = threading.Thread(target=at_once, args=(emu, 3))
    first.start()
    for _ in range(200):  # wait until the server works on all three
        if emu.gate.describe()["in_flight"] == 3:
            break
        threading.Event().wait(0.01)
    emu.gate.configure(capacity=1)
    assert ask(emu)[0] == 429  # three in flight, room for one: refused
    first.join(timeout=30)
    assert ask(emu)[0] == 200


def test_the_command_line_takes_capacity_queue_and_the_503_switch():
    assert cli("emulator", "--queue").code == 2
    assert cli("emulator", "--capacity-503").code == 2
    assert cli("emulator", "--capacity", "0").code == 2
    argv = ["-m", "image_gen_local", "emulator", "--port", "0", "--capacity", "2", "--queue"]
    process, port = serving(argv)
    try:
        url = f"http://127.0.0.1:{port}/emulator/capacity"
        with urllib.request.urlopen(url, timeout=10) as response:
            shown = json.loads(response.read())
        assert shown["capacity"] == 2 and shown["queue"] is True and shown["status"] == 429
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.mark.parametrize("capacity", [1, 2])
def test_stopping_the_emulator_ends_the_wait_of_queued_requests(capacity):
    emu = Emulator(EmulatorConfig(capacity=capacity, queue=True, latency=2.0)).start()
    waiting = threading.Thread(target=at_once, args=(emu, capacity + 2))
    waiting.start()
    for _ in range(200):
        if emu.gate.describe()["waiting"] == 2:
            break
        threading.Event().wait(0.01)
    emu.stop()
    waiting.join(timeout=30)
    assert not waiting.is_alive()
