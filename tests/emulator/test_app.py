"""The emulator's application without a socket: a `Request` in, a `Reply` out, the request recorded.

The same server rules the HTTP tests check over a real connection, driven here straight through
`App.answer`, the way httpx's MockTransport drives a handler: routes and methods, keys, request errors,
scripted answers, every fault of the catalogue, and the control endpoint.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image, ImageOps

from image_gen_local.emulator import App, EmulatorConfig, Reply, Request
from image_gen_local.emulator.faults import CATALOGUE, parse_spec
from image_gen_local.upstream import EMULATOR_HEADER, EMULATOR_HEADER_VALUE

JSON = {"Content-Type": "application/json"}
GENERATIONS = "/v1/images/generations"


def post(app: App, body: object, path: str = GENERATIONS, **headers: str) -> Reply:
    return app.answer(Request("POST", path, {**JSON, **headers}, json.dumps(body).encode()))


def picture(reply: Reply) -> Image.Image:
    data = json.loads(reply.payload)["data"][0]["b64_json"]
    return Image.open(io.BytesIO(base64.b64decode(data)))


ROUTES = [
    ("GET", "/health", 200),
    ("HEAD", "/healthz", 200),
    ("GET", "/healthz?probe=1", 200),
    ("DELETE", "/health", 405),
    ("GET", "/v1/models", 200),
    ("POST", "/v1/models", 405),
    ("GET", GENERATIONS, 405),
    ("GET", "/v1/images/edits", 405),
    ("GET", "/v1/nothing", 404),
    ("POST", "/v1", 404),
    ("GET", "/emulator/faults", 200),
    ("DELETE", "/emulator/faults", 405),
]


@pytest.mark.parametrize(("method", "path", "status"), ROUTES)
def test_each_route_answers_its_methods_and_refuses_the_others(method, path, status):
    app = App()
    reply = app.answer(Request(method, path))
    assert reply.status == status
    if status in (404, 405):
        assert reply.payload == b""
    assert app.requests[-1].status == status and app.requests[-1].path == path


def test_every_reply_says_it_comes_from_the_emulator_even_a_scripted_one():
    app = App()
    app.plan.push([Reply(500, "boom")])
    for reply in (post(app, {"prompt": "x"}), app.answer(Request("GET", "/v1/nothing"))):
        assert reply.headers[EMULATOR_HEADER] == EMULATOR_HEADER_VALUE


KEYS = [
    ({}, 401),
    ({"Authorization": "Bearer sk-secret"}, 200),
    ({"authorization": "sk-secret"}, 200),  # header names in any case; "Bearer " is optional
    ({"X-Api-Key": "sk-secret"}, 200),
    ({"x-goog-api-key": "sk-secret"}, 200),
    ({"Authorization": "Bearer sk-wrong", "x-api-key": "sk-secret"}, 401),  # the first present decides
    ({"Authorization": "Bearer "}, 401),
]


@pytest.mark.parametrize(("headers", "status"), KEYS)
def test_a_key_is_read_from_the_headers_the_server_reads(headers, status):
    app = App(EmulatorConfig(api_key="sk-secret"))
    assert app.answer(Request("GET", "/v1/models", headers)).status == status
    assert app.requests[-1].authorized is (status == 200)
    assert app.answer(Request("GET", "/health")).status == 200  # health needs no key


REQUEST_ERRORS = [
    ({"Content-Type": "text/plain"}, b'{"prompt": "x"}', 415, b"Expected request with"),
    (JSON, b"{not json", 400, b"Failed to parse the request body as JSON: "),
    (JSON, b"{}", 400, b"Missing 'prompt' field"),
    (JSON, b'{"prompt": 5}', 400, b"Missing 'prompt' field"),
    (JSON, b'{"prompt": "x", "n": 0}', 502, b"No images generated"),
]


@pytest.mark.parametrize(("headers", "body", "status", "start"), REQUEST_ERRORS)
def test_bad_requests_get_the_servers_plain_text_errors(headers, body, status, start):
    reply = App().answer(Request("POST", GENERATIONS, headers, body))
    assert reply.status == status and reply.payload.startswith(start)
    assert reply.content_type == "text/plain; charset=utf-8"


def test_an_unreadable_body_is_answered_as_the_edge_says_and_recorded():
    app = App()
    reply = app.answer(Request("POST", GENERATIONS, JSON, unreadable=Reply(413, "length limit exceeded")))
    assert (reply.status, reply.payload) == (413, b"length limit exceeded")
    assert (app.requests[-1].route, app.requests[-1].status) == ("generations", 413)


def test_a_generation_is_planned_rendered_and_recorded():
    app = App()
    reply = post(app, {"prompt": "a fox", "size": "16:9", "image_size": "2K", "style": "none"})
    assert reply.status == 200 and picture(reply).size == (2752, 1536)
    record = app.requests[-1]
    assert (record.route, record.aspect_ratio, record.image_size) == ("generations", "16:9", "2K")
    assert record.effective_prompt == "a fox" and record.body["size"] == "16:9"


def test_latency_is_a_delay_on_the_reply_not_a_sleep_in_the_app():
    app = App(EmulatorConfig(latency=30))
    assert post(app, {"prompt": "x"}).delay == 30
    assert app.answer(Request("GET", "/v1/models")).delay == 0


def test_scripted_replies_come_before_auth_and_only_on_image_posts():
    app = App(EmulatorConfig(api_key="k"))
    app.plan.push([Reply(503, "busy")])
    assert app.answer(Request("GET", "/v1/models")).status == 401  # a GET does not take the script
    assert post(app, {"prompt": "one"}).status == 503
    assert app.requests[-1].scripted and app.requests[-1].body == {"prompt": "one"}
    assert post(app, {"prompt": "two"}).status == 401


# What each early fault answers, without a socket: (status, the start of the body or None).
EARLY = {
    "429-retry-delay": (429, b"Max retries exhausted."),
    "429-retry-after": (429, b"Too Many Requests"),
    "429-exhausted": (429, b"All accounts exhausted"),
    "503-capacity": (503, b"Max retries exhausted."),
    "500": (500, b"Internal error encountered."),
    "reset-before": (200, None),
    "502-no-image": (502, b"No images generated"),
    "empty-data": (200, b'{"created"'),
    "content-filter": (200, b'{"id": "chatcmpl-fault"'),
    "503-disabled": (503, b"Proxy service is currently disabled"),
    "502-no-quota": (502, b"No accounts available with quota for model: gemini-3-pro-image"),
    "401": (401, b""),
    "403-validation": (403, b"Upstream error 403 Forbidden"),
    "404-model": (404, b'{"error": {"message": "Requested entity was not found."'),
    "413": (413, b"length limit exceeded"),
    "html": (200, b"<!doctype html>"),
    "bad-base64": (200, b'{"created"'),
    "corrupt-png": (200, b'{"created"'),
    "bomb": (200, b'{"created"'),
    "huge": (200, None),
    "redirect-loop": (302, b""),
    "hang-download": (200, b'{"created": 0, "data": [{"url": "http://127.0.0.1:8045/emulator/hang/600"}]}'),
    "file-url": (200, b'{"created": 0, "data": [{"url": "file:///etc/passwd"}]}'),
    "gzip-bomb": (200, b"\x1f\x8b"),
    "deflate-bomb": (200, b"\x78\xda"),
    "500-gzip-bomb": (500, b"\x1f\x8b"),
    "lying-encoding": (200, b'{"data": []}'),
    "error-cut-short": (401, b"bad key"),
    "wrong-shape": (200, b'{"choices": 5, "data": 5}'),
    "nested-json": (200, b"[[[[[[[[[["),
    "markdown-bait": (200, b'{"choices": [{"message": {"role": "assistant", "content": "![![![!['),
    "error-in-200": (200, b'{"error": {"code": 429'),
    "429-zero-wait": (429, b"Max retries exhausted."),
    "key-echo": (401, b"x" * 220 + b" invalid api key sk-mine rejected"),
    "terminal-escapes": (400, b"Bad request: \x1b]0;"),
    "degenerate": (200, b'{"created"'),
}
IMAGE_FAULTS = [name for name, fault in CATALOGUE.items() if fault.target == "images"]


@pytest.mark.parametrize("name", [name for name in IMAGE_FAULTS if not CATALOGUE[name].late])
def test_every_early_fault_replaces_the_answer_and_is_recorded(name):
    app = App(EmulatorConfig(faults=name))
    reply = post(
        app,
        {"prompt": "x", "model": "gemini-3-pro-image"},
        Host="127.0.0.1:8045",
        Authorization="Bearer sk-mine",
    )
    status, start = EARLY[name]
    assert reply.status == status
    if start is not None:
        assert reply.payload.startswith(start)
    assert app.requests[-1].fault == name and app.requests[-1].scripted
    assert post(app, {"prompt": "x"}).status == 200  # then the server behaves


def test_late_faults_spoil_the_servers_own_answer():
    app = App(EmulatorConfig(faults="slow:7,reset-during,truncated-json,partial,drafts"))
    own = post(app, {"prompt": "x"})
    assert (own.status, own.delay) == (200, 7)
    assert post(app, {"prompt": "x"}).reset == "during"
    truncated = post(app, {"prompt": "x"}).payload
    assert truncated.startswith(b'{"created"') and not truncated.endswith(b"}")
    assert json.loads(post(app, {"prompt": "x"}).payload)["data"] == []
    drafts = json.loads(post(app, {"prompt": "x"}).payload)["data"]
    assert len(drafts) == 3
    assert [r.fault for r in app.requests] == [
        "slow:7",
        "reset-during",
        "truncated-json",
        "partial",
        "drafts",
    ]


def test_a_late_fault_leaves_a_failed_answer_alone_but_slow_still_delays_it():
    app = App(EmulatorConfig(faults="truncated-json,slow:5"))
    assert post(app, {"prompt": ""}).payload == b"Missing 'prompt' field"
    reply = post(app, {"prompt": ""})
    assert (reply.status, reply.delay) == (400, 5)


def test_the_control_endpoint_changes_the_plan():
    app = App()
    body = json.dumps({"script": ["503-disabled", "ok"], "rate": 0.0}).encode()
    described = json.loads(app.answer(Request("POST", "/emulator/faults", JSON, body)).payload)
    assert described["script"] == ["503-disabled", "ok"]
    assert len(described["catalogue"]) == len(CATALOGUE)
    assert post(app, {"prompt": "x"}).status == 503
    bad = app.answer(Request("POST", "/emulator/faults", JSON, b'{"script": ["nope"]}'))
    assert bad.status == 400 and b"unknown fault" in bad.payload


def test_models_faults_wait_for_a_models_request_and_image_faults_for_an_image_request():
    app = App(EmulatorConfig(faults="models-wrong-shape,500"))
    assert post(app, {"prompt": "x"}).status == 500  # the image request takes the first image fault
    assert json.loads(app.answer(Request("GET", "/v1/models")).payload)["data"] == 5
    assert app.requests[-1].fault == "models-wrong-shape"
    assert json.loads(app.answer(Request("GET", "/v1/models")).payload)["data"]  # then a real list
    app.plan.push([parse_spec("models-slow:9")])
    assert app.answer(Request("GET", "/v1/models")).delay == 9


def test_the_random_pool_never_draws_a_models_fault_for_an_image_request():
    app = App(EmulatorConfig(fault_rate=1.0, fault_pool="models-wrong-shape,500", seed=1))
    assert {post(app, {"prompt": "x"}).status for _ in range(5)} == {500}


def reshaped(name: str, body: dict | None = None) -> Image.Image:
    app = App(EmulatorConfig(faults=name))
    reply = post(app, body or {"prompt": "x", "size": "16:9", "style": "none"})
    assert reply.status == 200 and app.requests[-1].fault == name
    image = picture(reply)
    image.load()
    return image


def test_a_rotated_answer_is_stored_sideways_and_says_how_to_turn_it():
    image = reshaped("rotated")
    assert image.size == (768, 1376) and image.getexif()[0x0112] == 6
    assert "synthetic" in image.info["Comment"]
    assert ImageOps.exif_transpose(image).size == (1376, 768)


PICTURE_FORMS = [
    ("cmyk", "JPEG", "CMYK", 1),
    ("16-bit", "PNG", "I;16", 1),
    ("animated", "GIF", "P", 3),
    ("transparent", "PNG", "RGBA", 1),
]


@pytest.mark.parametrize(("name", "fmt", "mode", "frames"), PICTURE_FORMS)
def test_awkward_picture_forms_keep_the_servers_size(name, fmt, mode, frames):
    image = reshaped(name)
    assert (image.format, image.mode, image.size) == (fmt, mode, (1376, 768))
    assert getattr(image, "n_frames", 1) == frames
    if name == "transparent":
        assert image.getextrema()[3] == (0, 0)


def test_a_degenerate_answer_is_one_pixel():
    assert reshaped("degenerate").size == (1, 1)


def test_the_faults_own_endpoints_answer_any_method_without_a_key():
    app = App(EmulatorConfig(api_key="k"))
    for method in ("GET", "POST"):
        loop = app.answer(Request(method, "/emulator/redirect-loop"))
        assert (loop.status, loop.headers["Location"]) == (302, "/emulator/redirect-loop")
    hang = app.answer(Request("GET", "/emulator/hang/42"))
    assert (hang.status, hang.delay, hang.content_type) == (200, 42, "image/png")
    assert Image.open(io.BytesIO(hang.payload)).size == (256, 256)
    assert app.answer(Request("GET", "/emulator/hang/soon")).status == 401
