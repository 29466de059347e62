"""The emulator's fault catalogue: parsing, the plan, and what each fault puts on the wire."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import socket
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest

from helpers import cli, run_script
from image_gen_local.emulator import Emulator, EmulatorConfig
from image_gen_local.emulator.faults import (
    CATALOGUE,
    TRANSIENT,
    FaultPlan,
    FaultSpec,
    parse_pool,
    parse_spec,
    parse_specs,
)


def post(emu: Emulator, path: str = "/v1/images/generations", body: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    payload = json.dumps(body or {"prompt": "a cat", "model": "gemini-3-pro-image"}).encode()
    connection.request("POST", path, payload, {"Content-Type": "application/json"})
    return connection, connection.getresponse()


def test_parse_specs_and_pool():
    assert parse_specs("429-retry-delay:0.5, ok ,500") == [
        FaultSpec("429-retry-delay", 0.5),
        None,
        FaultSpec("500"),
    ]
    assert parse_spec("429-retry-delay").value == pytest.approx(1.17)
    assert parse_pool("transient") == TRANSIENT
    assert parse_pool("all") == tuple(CATALOGUE)
    assert parse_pool("500,huge:2") == ("500", "huge:2")
    with pytest.raises(ValueError, match="unknown fault"):
        parse_spec("nope")
    with pytest.raises(ValueError, match="number"):
        parse_spec("slow:soon")


def test_every_fault_says_what_a_client_should_do():
    assert {f.recovery for f in CATALOGUE.values()} <= {
        "retry",
        "retry-once",
        "other-model",
        "take-last",
        "accept",
        "stop",
    }
    # The default random pool is what a busy but healthy real server does; hostile faults are not in it.
    assert TRANSIENT == (
        "429-retry-delay",
        "429-retry-after",
        "429-exhausted",
        "503-capacity",
        "500",
        "reset-before",
        "reset-during",
    )
    assert all(CATALOGUE[name].recovery == "retry" for name in TRANSIENT)


def test_plan_script_then_random_repeatably():
    script = parse_specs("500,ok")
    first = FaultPlan(script, rate=0.5, pool=["500", "413"], seed=7)
    second = FaultPlan(script, rate=0.5, pool=["500", "413"], seed=7)
    assert first.next() == FaultSpec("500") and first.next() is None
    drawn = [str(first.next()) for _ in range(40)]
    second.next(), second.next()
    assert drawn == [str(second.next()) for _ in range(40)]
    assert 5 < sum(d != "None" for d in drawn) < 35
    first.clear()
    assert first.next() is None
    with pytest.raises(ValueError):
        first.configure(rate=2)


def test_429_carries_googles_retry_delay():
    with Emulator(EmulatorConfig(faults="429-retry-delay:0.25")) as emu:
        _, response = post(emu)
        body = response.read().decode()
        assert response.status == 429 and response.getheader("Content-Type").startswith("text/plain")
        assert '"retryDelay": "0.25s"' in body and "RESOURCE_EXHAUSTED" in body
        assert emu.requests[-1].fault == "429-retry-delay:0.25"


def test_retry_after_and_empty_401():
    with Emulator(EmulatorConfig(faults="429-retry-after:3,401")) as emu:
        _, response = post(emu)
        assert response.status == 429 and response.getheader("Retry-After") == "3"
        response.read()
        _, response = post(emu)
        assert response.status == 401 and response.read() == b""


def test_reset_before_any_answer():
    with (
        Emulator(EmulatorConfig(faults="reset-before")) as emu,
        pytest.raises((ConnectionError, http.client.HTTPException)),
    ):
        post(emu)


def test_reset_in_the_middle_of_the_body():
    with Emulator(EmulatorConfig(faults="reset-during")) as emu:
        _, response = post(emu)
        assert response.status == 200
        with pytest.raises((ConnectionError, http.client.IncompleteRead)):
            response.read()


def test_truncated_json_is_a_prefix_of_a_real_answer():
    with Emulator(EmulatorConfig(faults="truncated-json")) as emu:
        _, response = post(emu)
        body = response.read()
        assert body.startswith(b'{"created"') and int(response.getheader("Content-Length")) == len(body)
        with pytest.raises(ValueError):
            json.loads(body)


def test_drafts_come_before_the_final_picture_on_chat():
    with Emulator(EmulatorConfig(faults="drafts")) as emu:
        body = {"model": "gemini-3-pro-image", "messages": [{"role": "user", "content": "a cat"}]}
        _, response = post(emu, "/v1/chat/completions", body)
        content = json.loads(response.read())["choices"][0]["message"]["content"]
        assert len(re.findall(r"!\[image\]\(data:image/png;base64,", content)) == 3


def test_partial_and_empty_data_serve_fewer_pictures():
    with Emulator(EmulatorConfig(faults="partial,empty-data")) as emu:
        for _ in range(2):
            _, response = post(emu, body={"prompt": "x", "n": 1})
            assert response.status == 200 and json.loads(response.read())["data"] == []


def test_bomb_declares_fifty_thousand_pixels_square():
    with Emulator(EmulatorConfig(faults="bomb")) as emu:
        _, response = post(emu)
        import base64

        png = base64.b64decode(json.loads(response.read())["data"][0]["b64_json"])
        assert png[12:16] == b"IHDR" and struct.unpack(">II", png[16:24]) == (50_000, 50_000)
        assert len(png) < 1_000_000


def test_huge_body_is_streamed_with_its_declared_length():
    size = 64 * 1024 * 1024
    with Emulator(EmulatorConfig(faults="huge:64")) as emu:
        _, response = post(emu)
        assert int(response.getheader("Content-Length")) == size
        total, head = 0, b""
        while chunk := response.read(1 << 20):
            head = head or chunk[:48]
            total += len(chunk)
        assert total == size and head.startswith(b'{"created": 1, "data": [{"b64_json": "AAAA')


def test_html_page_with_200():
    with Emulator(EmulatorConfig(faults="html")) as emu:
        _, response = post(emu)
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/html")
        assert response.read().lower().startswith(b"<!doctype html>")


def test_slow_delays_the_real_answer(tmp_path):
    with Emulator(EmulatorConfig(faults="slow:0.3")) as emu:
        _, response = post(emu)
        assert response.status == 200 and json.loads(response.read())["data"]
        assert emu.requests[-1].fault == "slow:0.3"


def test_control_endpoint_drives_a_running_emulator():
    with Emulator() as emu:
        request = urllib.request.Request(
            f"{emu.root_url}/emulator/faults",
            data=json.dumps({"script": ["503-disabled", "ok"], "rate": 0.0}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["script"] == ["503-disabled", "ok"]
        _, answer = post(emu)
        assert answer.status == 503 and answer.read() == b"Proxy service is currently disabled"
        with urllib.request.urlopen(f"{emu.root_url}/emulator/faults", timeout=10) as response:
            described = json.loads(response.read())
        assert described["script"] == ["ok"] and len(described["catalogue"]) == len(CATALOGUE)


def test_random_rate_injects_roughly_that_share():
    with Emulator(EmulatorConfig(fault_rate=0.3, fault_pool="500", seed=3)) as emu:
        statuses = []
        for _ in range(60):
            _, response = post(emu, body={"prompt": "x"})
            response.read()
            statuses.append(response.status)
        assert 8 <= statuses.count(500) <= 30 and statuses.count(200) == 60 - statuses.count(500)


def readme_fault_table() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    return text.split("## Faults and what the client does", 1)[1].split("\n## ", 1)[0]


def test_the_readme_fault_table_names_every_fault_of_the_catalogue():
    table = readme_fault_table()
    assert [name for name in CATALOGUE if f"`{name}" not in table] == []


def test_list_faults_and_help_come_from_the_catalogue():
    listed = cli("emulator", "--list-faults")
    assert listed.code == 0
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [
        [f.name, f.recovery] for f in CATALOGUE.values()
    ]
    helped = run_script("emulator", "--help")
    assert helped.returncode == 0
    names = " ".join(helped.stdout.split()).split("Faults: ", 1)[1].split(". ", 1)[0]
    assert names.split(", ") == ["ok", *CATALOGUE]


def test_trickle_sends_the_status_line_one_byte_at_a_time():
    with Emulator(EmulatorConfig(faults="trickle:0.5")) as emu:
        sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
        with sock:
            body = b'{"prompt": "x"}'
            head = "POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            first, second = sock.recv(100), sock.recv(100)
        assert (first, second) == (b"H", b"T")
        assert emu.requests[-1].fault == "trickle:0.5"


@pytest.mark.parametrize(
    ("fault", "status", "encoding"),
    [("gzip-bomb:3", 200, "gzip"), ("deflate-bomb:3", 200, "deflate"), ("500-gzip-bomb:3", 500, "gzip")],
)
def test_compression_bombs_are_valid_streams_that_expand_a_thousandfold(fault, status, encoding):
    with Emulator(EmulatorConfig(faults=fault)) as emu:
        _, response = post(emu)
        body = response.read()
        assert response.status == status and response.getheader("Content-Encoding") == encoding
    expanded = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body)
    assert expanded == bytes(3 * 1024 * 1024) and len(body) < 4 * 1024


def test_an_error_cut_short_declares_more_than_it_sends():
    with Emulator(EmulatorConfig(faults="error-cut-short")) as emu:
        _, response = post(emu)
        assert response.status == 401 and response.getheader("Content-Length") == "5000"
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial == b"bad key"


def test_a_hanging_download_points_back_at_the_emulator():
    with Emulator(EmulatorConfig(faults="hang-download:0.2")) as emu:
        _, response = post(emu)
        url = json.loads(response.read())["data"][0]["url"]
        assert url == f"http://127.0.0.1:{emu.port}/emulator/hang/0.2"
        with urllib.request.urlopen(url, timeout=10) as download:
            assert download.read().startswith(b"\x89PNG")


def test_a_redirect_loop_never_ends():
    with Emulator(EmulatorConfig(faults="redirect-loop")) as emu:
        request = urllib.request.Request(
            f"{emu.base_url}/images/generations", data=b"{}", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError, match="redirect"):
            urllib.request.urlopen(request, timeout=10)
        assert [r.route for r in emu.requests].count("other") >= 4
