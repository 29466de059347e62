"""The whole client against the real emulator over HTTP: geometry, routes, retries, fallbacks, outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from helpers import cli, picture, png_bytes, write_picture
from image_gen_local.batch import run_request
from image_gen_local.config import Settings
from image_gen_local.emulator import Reply
from image_gen_local.engine import Generator
from image_gen_local.errors import ExitCode, ServerError
from image_gen_local.geometry import parse_ratio
from image_gen_local.request import ImageRequest, prepare
from image_gen_local.retry import RetryPolicy
from image_gen_local.throttle import Throttle


def gen(emu, out_dir, *args):
    return cli(*args, "--base-url", emu.root_url, "--output-dir", str(out_dir))


def image_posts(emu):
    return [r for r in emu.requests if r.route in ("generations", "edits", "chat")]


def test_text_to_image_default(emulator, out_dir):
    run = gen(emulator, out_dir, "a cute cat, cartoon style")
    assert run.code == 0, run.stderr
    [path] = run.paths
    assert path.is_absolute() and path.parent == out_dir.resolve()
    assert path.name.endswith("-a-cute-cat-cartoon-style.png")
    assert picture(path).size == (1024, 1024)
    [request] = image_posts(emulator)
    assert request.route == "generations"
    assert request.effective_prompt == "a cute cat, cartoon style"  # verbatim: no vivid/hd suffix
    assert request.body["style"] == "none" and "quality" not in request.body
    assert request.aspect_ratio == "1:1" and request.image_size == "1K"


@pytest.mark.parametrize(
    ("args", "size", "asked"),
    [
        (["--aspect-ratio", "16:9"], (1376, 768), ("16:9", "1K")),
        (["--aspect-ratio", "16:9", "--resolution", "4K"], (5504, 3072), ("16:9", "4K")),
        (["--aspect-ratio", "3:4", "--resolution", "2k"], (1792, 2400), ("3:4", "2K")),
        (["--size", "1920x1080"], (1920, 1080), ("16:9", "2K")),
        (["--size", "500x500"], (500, 500), ("1:1", "1K")),
        (["--aspect-ratio", "9:21"], (590, 1376), ("9:16", "1K")),
    ],
)
def test_geometry_delivered_exactly(emulator, out_dir, args, size, asked):
    run = gen(emulator, out_dir, "mountains", *args)
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).size == size
    [request] = image_posts(emulator)
    assert (request.aspect_ratio, request.image_size) == asked


def test_size_too_large_is_usage_error_before_any_request(emulator, out_dir):
    run = gen(emulator, out_dir, "x", "--size", "99999x99999")
    assert run.code == 2 and "largest" in run.stderr and run.stdout == ""
    assert image_posts(emulator) == []


def test_image_to_image_uses_edits_with_real_mime_and_input_ratio(emulator, out_dir, tmp_path):
    photo = write_picture(tmp_path / "photo.png", (800, 600))
    run = gen(emulator, out_dir, "anime style, a plain orange rectangle", "--image", str(photo))
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).size == (1200, 896)  # 4:3 from the input
    [request] = image_posts(emulator)
    assert request.route == "edits"
    assert request.aspect_ratio == "4:3"
    [(field, declared, _length, sniffed)] = request.files
    assert field == "image" and declared == "image/png" and sniffed == "PNG"


def test_several_inputs_each_with_the_type_of_its_bytes(emulator, out_dir, tmp_path):
    main = write_picture(tmp_path / "main.jpg", (640, 640), "JPEG")
    disguised = write_picture(tmp_path / "ref.png", (300, 200), "JPEG")  # a JPEG named .png
    third = write_picture(tmp_path / "third.webp", (300, 300), "WEBP")
    run = gen(
        emulator, out_dir, "combine", "--image", str(main), "--image", str(disguised), "--image", str(third)
    )
    assert run.code == 0, run.stderr
    [request] = image_posts(emulator)
    fields = [(f[0], f[1], f[3]) for f in request.files]
    assert fields[0] == ("image", "image/jpeg", "JPEG")
    assert fields[1] == ("image1", "image/jpeg", "JPEG")
    assert fields[2][0] == "image2" and fields[2][1].split("/")[1].upper() in (fields[2][2], "PNG")
    assert all(
        declared.split("/")[1].replace("jpeg", "JPEG").upper() == sniffed for _, declared, sniffed in fields
    )


def test_exif_orientation_sets_the_ratio(emulator, out_dir, tmp_path):
    image = Image.new("RGB", (800, 600), "blue")
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    exif[0x8825] = {1: "N"}  # a GPS block that must not leave the machine
    path = tmp_path / "phone.jpg"
    image.save(path, "JPEG", exif=exif)
    run = gen(emulator, out_dir, "portrait", "--image", str(path))
    assert run.code == 0, run.stderr
    [request] = image_posts(emulator)
    assert request.aspect_ratio == "3:4"


def test_server_format_names_the_extension(make_emulator, out_dir):
    emu = make_emulator(image_format="jpeg")
    run = gen(emu, out_dir, "a jpeg please")
    assert run.code == 0, run.stderr
    assert run.paths[0].suffix == ".jpg" and picture(run.paths[0]).format == "JPEG"


def test_count_gives_distinct_files(emulator, out_dir):
    run = gen(emulator, out_dir, "three cats", "-n", "3")
    assert run.code == 0, run.stderr
    assert len(set(run.paths)) == 3 and all(p.exists() for p in run.paths)
    assert len(image_posts(emulator)) == 3  # one request per picture


def test_existing_file_is_never_overwritten(emulator, out_dir):
    first = gen(emulator, out_dir, "same prompt").paths[0]
    before = first.read_bytes()
    second = gen(emulator, out_dir, "same prompt").paths[0]
    assert first != second and first.read_bytes() == before


def test_output_exact_file_converted_to_its_extension(emulator, tmp_path):
    target = tmp_path / "nested" / "cover.jpg"
    run = cli("cover", "--base-url", emulator.root_url, "-o", str(target))
    assert run.code == 0, run.stderr
    assert run.paths == [target.resolve()] and picture(target).format == "JPEG"
    again = cli("cover", "--base-url", emulator.root_url, "-o", str(target))
    assert again.code == 2 and "already exists" in again.stderr


def test_chat_route_reads_markdown_content(emulator, out_dir):
    run = gen(emulator, out_dir, "chatty cat", "--route", "chat", "--aspect-ratio", "21:9")
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).size == (1584, 672)
    [request] = image_posts(emulator)
    assert request.route == "chat" and request.aspect_ratio == "21:9"


def test_chat_takes_the_last_of_several_pictures(emulator, out_dir):
    draft = png_bytes((64, 64), "red")
    final = png_bytes((1024, 1024), "green")
    import base64

    def md(data: bytes) -> str:
        return f"![image](data:image/png;base64,{base64.b64encode(data).decode()})"

    body = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "thinking " + md(draft) + md(draft) + " done " + md(final),
                },
                "finish_reason": "stop",
            }
        ]
    }
    emulator.script(Reply(200, json.dumps(body), content_type="application/json"))
    run = gen(emulator, out_dir, "x", "--route", "chat")
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).getpixel((5, 5)) == (0, 128, 0)


def test_missing_images_api_falls_back_to_chat(emulator, out_dir):
    emulator.script(Reply(404, ""))
    run = gen(emulator, out_dir, "fallback")
    assert run.code == 0, run.stderr
    assert [r.route for r in image_posts(emulator)] == ["generations", "chat"]
    assert "/chat/completions" in run.stderr


def test_cliproxyapi_style_refusal_switches_to_chat(emulator, out_dir):
    emulator.script(
        Reply(
            400,
            json.dumps(
                {
                    "error": {
                        "message": "Model gemini-3-pro-image is not supported on /v1/images/generations "
                        "or /v1/images/edits. Use ...",
                        "type": "invalid_request_error",
                    }
                }
            ),
            content_type="application/json",
        )
    )
    run = gen(emulator, out_dir, "cpa")
    assert run.code == 0, run.stderr
    assert [r.route for r in image_posts(emulator)][-1] == "chat"


def test_model_without_quota_falls_back_to_other_tier(make_emulator, out_dir):
    emu = make_emulator(models=("gemini-3.1-flash-image",))
    run = gen(emu, out_dir, "flash only", "--json")
    assert run.code == 0, run.stderr
    doc = run.json
    assert doc["images"][0]["model"] == "gemini-3.1-flash-image"
    assert any("gemini-3-pro-image is unavailable" in w for w in doc["warnings"])
    assert "trying gemini-3.1-flash-image" in run.stderr


def test_rate_limit_with_retry_delay_is_retried(emulator, out_dir):
    body = 'Upstream error 429 Too Many Requests: {"error": {"details": [{"retryDelay": "0.05s"}]}}'
    emulator.script(Reply(429, body), Reply(503, "MODEL_CAPACITY_EXHAUSTED", headers={"Retry-After": "0"}))
    run = gen(emulator, out_dir, "retry me", "--json")
    assert run.code == 0, run.stderr
    assert run.json["images"][0]["retries"] == 2
    assert "retrying in" in run.stderr


def test_no_images_generated_is_retried_once_then_exit_6(emulator, out_dir):
    emulator.script(Reply(502, "No images generated"), Reply(502, "No images generated"))
    run = gen(emulator, out_dir, "blocked")
    assert run.code == 6 and run.stdout == ""
    assert "rephrase" in run.stderr
    assert len(image_posts(emulator)) == 2
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_safety_refusal_on_chat_says_rephrase(emulator, out_dir):
    body = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "I can't help with that."},
                "finish_reason": "content_filter",
            }
        ]
    }
    emulator.script(Reply(200, json.dumps(body), content_type="application/json"))
    run = gen(emulator, out_dir, "x", "--route", "chat")
    assert run.code == 6 and "rephrase" in run.stderr and "content_filter" in run.stderr


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (Reply(503, "Proxy service is currently disabled"), 3, "start the proxy service"),
        (Reply(403, "VALIDATION_REQUIRED: verify your account"), 4, "Accounts page"),
        (Reply(200, "<!DOCTYPE html><html><body>SPA</body></html>", content_type="text/html"), 3, "HTML"),
        (Reply(400, "Missing 'prompt' field"), 3, "Missing 'prompt' field"),
    ],
)
def test_permanent_failures_stop_at_once(emulator, out_dir, reply, code, words):
    emulator.script(reply)
    run = gen(emulator, out_dir, "x")
    assert run.code == code, run.stderr
    assert words in run.stderr
    assert len(image_posts(emulator)) == 1
    assert len(run.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_server_ignoring_ratio_is_reported_and_fixed(emulator, out_dir):
    import base64

    square = base64.b64encode(png_bytes((1024, 1024))).decode()
    emulator.script(
        Reply(
            200, json.dumps({"created": 1, "data": [{"b64_json": square}]}), content_type="application/json"
        )
    )
    run = gen(emulator, out_dir, "wide", "--aspect-ratio", "16:9", "--json")
    assert run.code == 0
    assert picture(Path(run.json["images"][0]["path"])).size == (1024, 576)
    assert any("ignored aspect ratio 16:9" in w for w in run.json["images"][0]["warnings"])
    assert "ignored aspect ratio" in run.stderr


def test_api_key_is_sent_and_never_printed(make_emulator, out_dir):
    key = "sk-very-secret-key-123"
    emu = make_emulator(api_key=key)
    denied = gen(emu, out_dir, "x")
    assert denied.code == 4 and "api-key" in denied.stderr
    run = cli("x", "--base-url", emu.root_url, "--output-dir", str(out_dir), "--api-key", key, "-v", "--json")
    assert run.code == 0, run.stderr
    dry = cli("x", "--base-url", emu.root_url, "--output-dir", str(out_dir), "--api-key", key, "--dry-run")
    for text in (denied.stdout, denied.stderr, run.stdout, run.stderr, dry.stdout, dry.stderr):
        assert key not in text
    assert "Bearer ***" in dry.stdout


def test_unreachable_server_exit_3(out_dir):
    run = cli("x", "--base-url", "http://127.0.0.1:9", "--output-dir", str(out_dir))
    assert run.code == 3 and "cannot connect" in run.stderr and "doctor" in run.stderr


def test_deadline_exit_8(make_emulator, out_dir):
    emu = make_emulator(latency=3)
    run = gen(emu, out_dir, "slow", "--timeout", "1")
    assert run.code == 8 and "--timeout" in run.stderr


def test_a_quota_wait_that_leaves_only_a_sliver_of_the_deadline_ends_as_quota_not_as_a_slow_server(
    make_emulator, out_dir
):
    # a stated wait of 4.6 s (4.65-5.1 s with our slack) leaves the retry 0.8-1.3 s of 6 s, and it hangs
    emu = make_emulator(faults="429-retry-delay:4.6", latency=8)
    run = gen(emu, out_dir, "quota", "--timeout", "6")
    assert run.code == 5, run.stderr  # the quota kept the picture from being made, not a slow server
    assert "no picture within --timeout 6 s; last problem: server answered 429" in run.stderr
    assert len(image_posts(emu)) == 2


def test_bad_output_dir_fails_before_any_request(emulator, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = cli("x", "--base-url", emulator.root_url, "--output-dir", str(blocker))
    assert run.code == 9 and "is a file" in run.stderr
    run = cli("x", "--base-url", emulator.root_url, "--output-dir", str(blocker / "sub"))
    assert run.code == 9
    assert image_posts(emulator) == []


def test_bad_input_picture_fails_before_any_request(emulator, out_dir, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("just text")
    run = gen(emulator, out_dir, "x", "--image", str(fake))
    assert run.code == 7 and "not a picture" in run.stderr
    assert image_posts(emulator) == [] and not out_dir.exists()


def test_dry_run_sends_nothing(emulator, out_dir, tmp_path):
    photo = write_picture(tmp_path / "p.png", (400, 400))
    run = gen(emulator, out_dir, "dry", "--image", str(photo), "--resolution", "2k")
    assert run.code == 0
    before = len(emulator.requests)
    run = gen(emulator, out_dir, "dry", "--image", str(photo), "--dry-run")
    assert run.code == 0 and len(emulator.requests) == before
    doc = json.loads(run.stdout)
    [request] = doc["requests"]
    assert request["url"].endswith("/v1/images/edits")
    assert request["files"][0]["content_type"] == "image/png"


def test_stdin_prompt(emulator, out_dir):
    out, err = io.StringIO(), io.StringIO()
    from image_gen_local.cli import main

    code = main(
        ["-", "--base-url", emulator.root_url, "--output-dir", str(out_dir)],
        stdin=io.StringIO("from stdin\n"),
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    assert image_posts(emulator)[0].effective_prompt == "from stdin"


def test_heartbeat_while_waiting(make_emulator, out_dir):
    emu = make_emulator(latency=0.8)
    said: list[str] = []
    settings = Settings(base_url=emu.base_url, output_dir=out_dir)
    generator = Generator(settings, warn=said.append)
    result = run_request(
        generator, prepare(ImageRequest("slow cat", aspect_ratio=parse_ratio("1:1")), settings), heartbeat=0.2
    )
    generator.close()
    assert result.exit_code == 0
    assert any(line.startswith("still working") for line in said)


def test_library_api(emulator, out_dir):
    from image_gen_local import Settings as PublicSettings
    from image_gen_local import generate

    result = generate(
        "library cat",
        aspect_ratio="4:3",
        settings=PublicSettings(base_url=emulator.base_url, output_dir=out_dir),
    )
    assert result.exit_code == 0
    assert picture(result.images[0].path).size == (1200, 896)


def test_http_url_answers_are_downloaded_without_the_key(make_emulator, out_dir):
    """An answer may point at an http(s) picture on another host: fetch it, but never send it our key."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = png_bytes((1376, 768), "purple")
    seen: list[dict[str, str]] = []

    class PictureHost(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    host = ThreadingHTTPServer(("127.0.0.1", 0), PictureHost)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        key = "sk-never-to-the-picture-host"
        emu = make_emulator(api_key=key)
        url = f"http://127.0.0.1:{host.server_port}/pictures/1.png"
        emu.script(
            Reply(200, json.dumps({"created": 1, "data": [{"url": url}]}), content_type="application/json")
        )
        run = cli(
            "wide",
            "--aspect-ratio",
            "16:9",
            "--base-url",
            emu.root_url,
            "--output-dir",
            str(out_dir),
            "--api-key",
            key,
        )
    finally:
        host.shutdown()
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).getpixel((10, 10)) == (128, 0, 128)
    assert len(seen) == 1
    assert not any(key in value for value in seen[0].values())
    assert "authorization" not in {name.lower() for name in seen[0]}


def test_model_fallback_is_decided_once_for_all_workers(make_emulator, out_dir):
    emu = make_emulator(models=("gemini-3.1-flash-image",))
    run = gen(emu, out_dir, "four at once", "-n", "4", "--json")
    assert run.code == 0, run.stderr
    assert {image["model"] for image in run.json["images"]} == {"gemini-3.1-flash-image"}
    assert "gemini-3.1-flash-image is unavailable" not in run.stderr  # no switching back and forth
    models = [r.body.get("model") for r in image_posts(emu)]
    assert models.count("gemini-3-pro-image") <= 2 and len(models) <= 6


def test_a_generator_works_again_after_a_run_that_stopped(emulator, out_dir):
    settings = Settings(base_url=emulator.base_url, output_dir=out_dir)
    generator = Generator(settings, warn=lambda _line: None)
    try:
        emulator.script("401")
        first = run_request(generator, prepare(ImageRequest("first"), settings), heartbeat=0)
        assert first.exit_code == 4
        second = run_request(generator, prepare(ImageRequest("second"), settings), heartbeat=0)
        assert second.exit_code == 0 and len(second.images) == 1
    finally:
        generator.close()


def test_an_overload_that_ends_a_picture_is_still_heard_by_the_limit(emulator, out_dir):
    settings = Settings(base_url=emulator.base_url, output_dir=out_dir)
    throttle = Throttle(4)
    generator = Generator(settings, warn=print, policy=RetryPolicy(max_retries=0), throttle=throttle)
    try:
        emulator.script("429-exhausted")
        with pytest.raises(ServerError) as stopped:
            generator.picture(prepare(ImageRequest("refused"), settings), 0, None)
        assert stopped.value.exit_code == ExitCode.QUOTA  # --retries 0: no second try
        assert throttle.decreases == 1 and throttle.limit == 1  # yet the next request waits for fewer
    finally:
        generator.close()
