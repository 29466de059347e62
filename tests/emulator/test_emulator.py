"""The offline emulator, over real HTTP with the openai SDK and urllib, plus its pure server-side rules."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import ImagesResponse
from PIL import Image

from image_gen_local import emulator as emu_mod
from image_gen_local.emulator import (
    Emulator,
    EmulatorConfig,
    Reply,
)

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
VIVID = ", (vivid colors, dramatic lighting, rich details)"
HD = ", (high quality, highly detailed, 4k resolution, hdr)"


# ----------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client(emu: Emulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.base_url, api_key="x", max_retries=0)


def sdk(emulator: Emulator, key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.base_url, api_key=key, max_retries=0)


def picture(b64: str | None) -> Image.Image:
    assert b64
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "red", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def raw(
    emulator: Emulator,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib; 4xx/5xx come back as values, not exceptions."""
    request = urllib.request.Request(
        emulator.root_url + path, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_json(emulator: Emulator, path: str, obj: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return raw(
        emulator, "POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json", **headers}
    )


def multipart(fields: list[tuple[str, str | tuple[str, bytes, str | None]]]) -> tuple[bytes, str]:
    """Encode form fields by hand, so tests control names, repeats and declared types exactly."""
    boundary = "emulator-test-boundary-7d9f"
    out = io.BytesIO()
    for name, value in fields:
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, str):
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
            continue
        filename, data, content_type = value
        out.write(f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode())
        if content_type:
            out.write(f"Content-Type: {content_type}\r\n".encode())
        out.write(b"\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post_form(
    emulator: Emulator, fields: list[tuple[str, str | tuple[str, bytes, str | None]]]
) -> tuple[int, dict[str, str], bytes]:
    body, content_type = multipart(fields)
    return raw(emulator, "POST", "/v1/images/edits", body, {"Content-Type": content_type})


def test_config_rejects_unknown_format() -> None:
    assert EmulatorConfig(image_format="JPG").image_format == "jpeg"
    with pytest.raises(ValueError, match="image_format"):
        EmulatorConfig(image_format="gif")


# ------------------------------------------------------------------------------------------- over HTTP


def test_health_and_emulator_header(emu: Emulator) -> None:
    for path in ("/health", "/healthz"):
        status, headers, body = raw(emu, "GET", path)
        assert status == 200
        assert json.loads(body) == {"status": "ok", "emulator": True, "synthetic": True}
        assert headers["X-Emulator"] == "image-gen-local (synthetic images)"


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list().data
    ids = [m.id for m in models]
    assert ids[:2] == [PRO, FLASH]
    assert {"gemini-3-pro-image-4k-16x9", "gemini-3-pro-image-2k", "gemini-3-pro-image-21x9"} <= set(ids)
    assert "gemini-3-flash" in ids and len(ids) == len(set(ids)) == 23
    assert {(m.owned_by, m.object, m.created) for m in models} == {("antigravity", "model", 1706745600)}


def test_default_generation_is_a_synthetic_1k_square(emu: Emulator, client: openai.OpenAI) -> None:
    result = client.images.generate(prompt="a red fox")
    assert len(result.data) == 1 and result.data[0].revised_prompt is None
    image = picture(result.data[0].b64_json)
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    assert image.info["Software"] == "image-gen-local emulator"
    assert "synthetic" in image.info["Comment"]
    record = emu.requests[-1]
    assert (record.route, record.model, record.aspect_ratio, record.image_size) == (
        "generations",
        FLASH,
        "1:1",
        None,
    )
    assert record.effective_prompt == "a red fox" + VIVID  # the default style rewrites every prompt
    assert record.authorized and record.status == 200


@pytest.mark.parametrize(
    ("size", "image_size", "expected"),
    [
        ("1920x1080", None, (1376, 768)),
        ("3440x1440", None, (1024, 1024)),
        ("1024X1024", None, (1024, 1024)),
        ("16:9", "4K", (5504, 3072)),
        ("1024x1536", "2k", (1696, 2528)),
    ],
)
def test_size_maps_to_server_pixels(
    client: openai.OpenAI, size: str, image_size: str | None, expected: tuple[int, int]
) -> None:
    extra = {"style": "none"} | ({"image_size": image_size} if image_size else {})
    result = client.images.generate(model=PRO, prompt="sizes", size=size, extra_body=extra)
    assert picture(result.data[0].b64_json).size == expected


def test_quality_hd_means_4k_and_rewrites_the_prompt(emu: Emulator, client: openai.OpenAI) -> None:
    result = client.images.generate(model=PRO, prompt="a lighthouse", quality="hd", size="4:3")
    assert picture(result.data[0].b64_json).size == (4800, 3584)
    record = emu.requests[-1]
    assert (record.image_size, record.effective_prompt) == ("4K", "a lighthouse" + HD + VIVID)


def test_style_none_keeps_the_prompt_verbatim(emu: Emulator, client: openai.OpenAI) -> None:
    client.images.generate(prompt="exactly this", extra_body={"style": "none", "imageSize": "1K"})
    assert emu.requests[-1].effective_prompt == "exactly this"
    client.images.generate(prompt="a forest", style="natural")
    assert emu.requests[-1].effective_prompt == "a forest, (natural lighting, realistic, photorealistic)"


def test_n_and_url_response_format(emu: Emulator, client: openai.OpenAI) -> None:
    result = client.images.generate(prompt="twins", n=2, response_format="url", size="9:16")
    assert len(result.data) == 2
    for item in result.data:
        assert item.b64_json is None and item.url is not None
        header, b64 = item.url.split(",", 1)
        assert header == "data:image/png;base64"
        assert picture(b64).size == (768, 1376)
    assert result.data[0].url != result.data[1].url  # each picture drawn separately, with its index


def test_model_suffix_sets_ratio_and_tier(emu: Emulator, client: openai.OpenAI) -> None:
    result = client.images.generate(model="gemini-3-pro-image-16x9-2k", prompt="suffix")
    assert picture(result.data[0].b64_json).size == (2752, 1536)
    record = emu.requests[-1]
    assert (record.model, record.aspect_ratio, record.image_size) == (PRO, "16:9", "2K")


def test_n_zero_is_no_images_generated(emu: Emulator) -> None:
    status, headers, body = post_json(emu, "/v1/images/generations", {"prompt": "x", "n": 0})
    assert (status, body) == (502, b"No images generated")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_generation_request_errors_are_plain_text(emu: Emulator) -> None:
    path = "/v1/images/generations"
    status, headers, body = raw(emu, "POST", path, b'{"prompt": "x"}', {"Content-Type": "text/plain"})
    assert (status, body) == (415, b"Expected request with `Content-Type: application/json`")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    status, _, body = raw(emu, "POST", path, b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and body.startswith(b"Failed to parse the request body as JSON: ")
    for payload in ({}, {"prompt": ""}, {"prompt": 5}):
        assert post_json(emu, path, payload)[::2] == (400, b"Missing 'prompt' field")


def test_sdk_sees_plain_text_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="")
    assert caught.value.response.text == "Missing 'prompt' field"


def test_edit_with_main_and_reference_images(emu: Emulator, client: openai.OpenAI) -> None:
    """`image` + `image1` through the SDK's own multipart encoder; aspect_ratio wins, quality is ignored."""
    jpeg = png_bytes((80, 60), "blue", "JPEG")
    result = client.post(
        "/images/edits",
        cast_to=ImagesResponse,
        body={"prompt": "make it green", "aspect_ratio": "16:9", "size": "1024x1536", "quality": "hd"},
        files=[
            ("image", ("main.png", png_bytes(), "image/png")),
            ("image1", ("ref.jpg", jpeg, "image/jpeg")),
        ],
        options={"headers": {"Content-Type": "multipart/form-data"}},
    )
    assert picture(result.data[0].b64_json).size == (1376, 768)
    record = emu.requests[-1]
    assert record.route == "edits" and record.status == 200
    assert record.files == [
        ("image", "image/png", len(png_bytes()), "PNG"),
        ("image1", "image/jpeg", len(jpeg), "JPEG"),
    ]
    assert (record.aspect_ratio, record.image_size, record.model) == ("16:9", None, FLASH)
    assert record.effective_prompt == "make it green"  # no style field: no rewriting, quality not read
    assert record.body["quality"] == "hd"


def test_edit_with_sdk_image_list_and_options(emu: Emulator, client: openai.OpenAI) -> None:
    """The SDK sends a list as `image[]` parts, which the server takes as reference images."""
    result = client.images.edit(
        image=[("a.png", png_bytes(), "image/png"), ("b.webp", png_bytes(fmt="WEBP"), "image/webp")],
        prompt="combine",
        response_format="url",
        extra_body={"image_size": "2K", "style": "watercolor", "aspect_ratio": "3:4"},
    )
    assert result.data[0].url and result.data[0].url.startswith("data:image/png;base64,")
    assert picture(result.data[0].url.split(",", 1)[1]).size == (1792, 2400)
    record = emu.requests[-1]
    assert [(f[0], f[1], f[3]) for f in record.files] == [
        ("image[]", "image/png", "PNG"),
        ("image[]", "image/webp", "WEBP"),
    ]
    assert record.effective_prompt == "combine, style: watercolor"


def test_edit_repeated_image_overwrites_and_mime_is_trusted(emu: Emulator) -> None:
    jpeg = png_bytes(fmt="JPEG")
    status, headers, body = post_form(
        emu,
        [
            ("prompt", "edit"),
            ("image", ("one.png", png_bytes(), "image/png")),
            ("image", ("two.png", jpeg, "image/png")),  # JPEG bytes declared as PNG
            ("model", "gemini-3-pro-image-4k"),
        ],
    )
    assert status == 200, body
    assert headers["X-Mapped-Model"] == PRO
    record = emu.requests[-1]
    assert record.files == [("image", "image/png", len(jpeg), "JPEG")]
    # size defaults to 1024x1024 on edits, so only the tier comes from the suffix
    assert (record.aspect_ratio, record.image_size) == ("1:1", "4K")
    assert picture(json.loads(body)["data"][0]["b64_json"]).size == (4096, 4096)


def test_edit_errors(emu: Emulator) -> None:
    image = ("image", ("a.png", png_bytes(), "image/png"))
    assert post_form(emu, [image])[::2] == (400, b"Missing prompt")
    assert emu.requests[-1].files == [("image", "image/png", len(png_bytes()), "PNG")]
    assert post_form(emu, [("prompt", ""), image])[::2] == (400, b"Missing prompt")
    assert post_form(emu, [("prompt", "x"), ("image_size", "2K")])[::2] == (400, b"Missing image")
    status, headers, body = post_form(
        emu, [("prompt", "x"), ("image", ("a.png", b"not an image", "image/png"))]
    )
    assert (status, body) == (
        400,
        b"Upstream error 400: Unable to process input image. Please retry or report",
    )
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert emu.requests[-1].files == [("image", "image/png", 12, None)]
    status, _, body = raw(emu, "POST", "/v1/images/edits", b"{}", {"Content-Type": "application/json"})
    assert status == 400 and b"multipart/form-data" in body


def test_chat_returns_a_markdown_data_url(emu: Emulator, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=FLASH,
        messages=[{"role": "user", "content": "a cat"}],
        extra_body={"size": "16:9", "imageSize": "2K", "image_size": "4K"},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and completion.usage and completion.usage.total_tokens == 0
    content = choice.message.content or ""
    assert content.startswith("![image](data:image/png;base64,") and content.endswith(")")
    assert picture(content[len("![image](data:image/png;base64,") : -1]).size == (2752, 1536)
    record = emu.requests[-1]
    assert (record.route, record.model, record.image_size, record.effective_prompt) == (
        "chat",
        FLASH,
        "2K",
        "a cat",
    )


def test_chat_stream(emu: Emulator, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=PRO,
        messages=[{"role": "user", "content": "a stream"}],
        stream=True,
        extra_body={"quality": "medium"},
    )
    chunks = list(stream)
    contents = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(contents) == 1 and contents[0].startswith("![image](data:image/png;base64,")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert picture(contents[0].split(",", 1)[1][:-1]).size == (2048, 2048)
    status, headers, body = post_json(
        emu,
        "/v1/chat/completions",
        {"model": FLASH, "messages": [{"role": "user", "content": "x"}], "stream": True},
    )
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    assert body.endswith(b"data: [DONE]\n\n")


def test_chat_image_inputs_and_prompt(emu: Emulator, client: openai.OpenAI) -> None:
    b64 = base64.b64encode(png_bytes(fmt="JPEG")).decode()
    client.chat.completions.create(
        model=FLASH,
        messages=[
            {"role": "user", "content": "first turn"},
            {
                "role": "assistant",
                "content": f"![image](data:image/png;base64,{base64.b64encode(png_bytes()).decode()})",
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "make it"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}},
                    {"type": "text", "text": "blue"},
                ],
            },
        ],
    )
    record = emu.requests[-1]
    assert record.effective_prompt == "make it\nblue"
    assert [(f[0], f[1], f[3]) for f in record.files] == [
        ("messages[1] markdown", "image/png", "PNG"),
        ("messages[2] image_url", "image/png", "JPEG"),
    ]


def test_chat_model_kinds(emu: Emulator, client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="dall-e-3", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert caught.value.response.text == "No accounts available with quota for model: dall-e-3"
    reply = client.chat.completions.create(
        model="gemini-3-flash", messages=[{"role": "user", "content": "hi"}]
    )
    assert "only draws" in (reply.choices[0].message.content or "")
    status, _, body = post_json(emu, "/v1/chat/completions", {"messages": []})
    assert status == 422 and b"missing field `model`" in body


def test_unconfigured_model_fails_like_the_server() -> None:
    with Emulator(EmulatorConfig(models=(FLASH,))) as emulator:
        client = sdk(emulator)
        with pytest.raises(openai.InternalServerError) as caught:
            client.images.generate(model="gemini-3-pro-image-4k", prompt="x")
        assert caught.value.status_code == 502
        assert caught.value.response.text == "No accounts available with quota for model: gemini-3-pro-image"
        assert caught.value.response.headers["content-type"] == "text/plain; charset=utf-8"
        assert emulator.requests[-1].model == PRO
        # edits always use the pro bucket, whatever the model
        status, _, body = post_form(
            emulator, [("prompt", "x"), ("model", FLASH), ("image", ("a.png", png_bytes(), "image/png"))]
        )
        assert (status, body) == (502, b"No accounts available with quota for model: gemini-3-pro-image")
        with pytest.raises(openai.NotFoundError) as not_found:
            client.chat.completions.create(model=PRO, messages=[{"role": "user", "content": "x"}])
        assert not_found.value.response.headers["content-type"] == "application/json"
        assert not_found.value.response.json() == {
            "error": {"message": "Requested entity was not found.", "type": "upstream_error", "code": 404}
        }
        assert client.images.generate(model="gemini-2.5-flash-image", prompt="flash bucket").data


def test_unknown_path_and_wrong_method_have_empty_bodies(emu: Emulator) -> None:
    status, headers, body = raw(emu, "GET", "/v1/nothing")
    assert (status, body, headers["X-Emulator"]) == (404, b"", "image-gen-local (synthetic images)")
    assert raw(emu, "GET", "/v1/images/generations")[::2] == (405, b"")
    assert raw(emu, "POST", "/v1/models", b"{}")[::2] == (405, b"")
    assert raw(emu, "DELETE", "/health")[::2] == (405, b"")
    assert raw(emu, "GET", "/healthz?probe=1")[0] == 200
    assert emu.requests[-1].route == "health"


def test_api_key_is_required_when_set() -> None:
    with Emulator(EmulatorConfig(api_key="sk-secret")) as emulator:
        body = json.dumps({"prompt": "x", "style": "none"}).encode()
        path = "/v1/images/generations"
        status, _, payload = raw(emulator, "POST", path, body, {"Content-Type": "application/json"})
        assert (status, payload) == (401, b"")
        assert emulator.requests[-1].authorized is False
        wrong = {
            "Content-Type": "application/json",
            "Authorization": "Bearer sk-wrong",
            "x-api-key": "sk-secret",
        }
        assert raw(emulator, "POST", path, body, wrong)[0] == 401  # the first key header present decides
        for header in (
            {"Authorization": "Bearer sk-secret"},
            {"Authorization": "sk-secret"},
            {"x-api-key": "sk-secret"},
            {"x-goog-api-key": "sk-secret"},
        ):
            assert raw(emulator, "POST", path, body, {"Content-Type": "application/json", **header})[0] == 200
        assert all("sk-secret" not in repr(r) for r in emulator.requests)
        assert raw(emulator, "GET", "/health")[0] == 200
        assert raw(emulator, "GET", "/v1/models")[0] == 401
        with pytest.raises(openai.AuthenticationError):
            sdk(emulator, "nope").images.generate(prompt="x")
        assert sdk(emulator, "sk-secret").models.list().data


def test_scripted_replies_come_first_in_order(emu: Emulator, client: openai.OpenAI) -> None:
    emu.script(
        Reply(429, "Max retries exhausted. Last error: Upstream error 429 Too Many Requests", delay=0.2),
        Reply(
            503, json.dumps({"error": "busy"}), headers={"Retry-After": "1"}, content_type="application/json"
        ),
    )
    started = time.monotonic()
    first = post_json(emu, "/v1/images/generations", {"prompt": "one"})
    assert time.monotonic() - started >= 0.2
    assert first[0] == 429 and first[2].startswith(b"Max retries exhausted")
    assert emu.requests[-1].scripted and emu.requests[-1].body == {"prompt": "one"}
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "two"}])
    assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"] == "1"
    assert raw(emu, "GET", "/v1/models")[0] == 200  # GETs do not consume the script
    assert client.images.generate(prompt="three").data  # the queue is empty again


def test_script_runs_before_auth() -> None:
    with Emulator(EmulatorConfig(api_key="k")) as emulator:
        emulator.script(Reply(500, "boom"))
        status, _, body = post_json(emulator, "/v1/images/generations", {"prompt": "x"})
        assert (status, body) == (500, b"boom")
        assert post_json(emulator, "/v1/images/generations", {"prompt": "x"})[0] == 401


def test_jpeg_and_webp_formats() -> None:
    with Emulator(EmulatorConfig(image_format="jpeg")) as emulator:
        result = sdk(emulator).images.generate(prompt="jpeg please", response_format="url")
        url = result.data[0].url or ""
        assert url.startswith("data:image/jpeg;base64,")
        image = picture(url.split(",", 1)[1])
        assert (image.format, image.size) == ("JPEG", (1024, 1024))
        assert "synthetic" in image.getexif()[0x010E]
        chat = sdk(emulator).chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "x"}])
        assert (chat.choices[0].message.content or "").startswith("![image](data:image/jpeg;base64,")
    with Emulator(EmulatorConfig(image_format="webp")) as emulator:
        result = sdk(emulator).images.generate(prompt="webp please")
        assert picture(result.data[0].b64_json).format == "WEBP"


def test_latency_applies_to_image_routes_only() -> None:
    with Emulator(EmulatorConfig(latency=0.3)) as emulator:
        client = sdk(emulator)
        started = time.monotonic()
        client.models.list()
        raw(emulator, "GET", "/health")
        assert time.monotonic() - started < 0.25
        started = time.monotonic()
        client.images.generate(prompt="slow")
        assert time.monotonic() - started >= 0.3
        with pytest.raises(openai.APITimeoutError):
            client.images.generate(prompt="too slow", timeout=0.1)


def test_keep_alive_chunked_body_and_size_limit(emu: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        body = iter([b'{"prompt": "chun', b'ked", "style": "none"}'])
        connection.request(
            "POST",
            "/v1/images/generations",
            body=body,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["data"]
        assert emu.requests[-1].effective_prompt == "chunked"
        connection.request("GET", "/health")  # same connection, kept alive
        response = connection.getresponse()
        assert response.status == 200 and response.read()
        connection.putrequest("POST", "/v1/images/generations")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(100 * 1024 * 1024 + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert (response.status, response.read()) == (413, b"length limit exceeded")
    finally:
        connection.close()


def test_stop_closes_kept_alive_connections() -> None:
    emulator = Emulator().start()
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    connection.request("GET", "/health")
    assert connection.getresponse().read()
    emulator.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        connection.request("GET", "/health")
        connection.getresponse().read()
    connection.close()


def test_serve_prints_a_warning_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    src = Path(emu_mod.__file__).resolve().parents[2]
    code = (
        "from image_gen_local.emulator import serve, EmulatorConfig; serve(EmulatorConfig(), '127.0.0.1', 0)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(src)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("image-gen-local emulator on http://127.0.0.1:")
        assert "/v1 — pictures are SYNTHETIC (no model is called); Ctrl-C to stop" in line
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert json.loads(response.read())["synthetic"] is True
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=10)[1]
        assert process.returncode == 0
        assert "Traceback" not in rest
    finally:
        if process.poll() is None:
            process.kill()
