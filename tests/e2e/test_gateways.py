"""The client through a real LiteLLM proxy (1.106.2), on both of its routes to Gemini image models.

One proxy per test session, on loopback, with no database and a master key. Its config has:
- `openai/` entries: LiteLLM's pass-through to another OpenAI-compatible server, here the project's emulator
  (which answers and rewrites prompts like Antigravity Tools);
- `gemini/` entries: LiteLLM's translation to Google's `generateContent`, here a small fake of that API
  owned by this file (stdlib http.server), drawing a picture of the size Gemini would for the
  `imageConfig` it receives;
- entries whose upstream is down, and one whose upstream refuses LiteLLM's own key.

LiteLLM lives in its own virtual environment (it pins another openai major version): `IMAGE_GEN_LITELLM`
names its executable, else `<repo>/.venv-litellm/bin/litellm`. Without it the module is skipped with one
line, except under CI, where it fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from helpers import ROOT, cli, picture, write_picture
from image_gen_local.emulator import Emulator
from image_gen_local.upstream import SERVER_SIZES, TIERS

MASTER_KEY = "sk-gateway-master-0123"
PRO = "gemini-3-pro-image"  # openai/ pass-through to the emulator
FLASH = "gemini-3.1-flash-image"  # the other tier, also through the pass-through
GOOGLE = "gemini-3-pro-image-preview"  # gemini/ translation to the fake Google API
DOWN_OPENAI = "gemini-down-image"  # openai/ to a port where nothing listens
DOWN_GOOGLE = "gemini-down-google-image"  # gemini/ to a port where nothing listens
REJECTED = "gemini-rejected-image"  # gemini/ whose upstream refuses LiteLLM's own key
REJECTED_KEY = "google-key-that-google-refuses"
ROUTES = (PRO, GOOGLE)
START_TIMEOUT = 180.0
RATIO_NAMES = [f"{w}:{h}" for w, h in SERVER_SIZES]


# --- a fake of Google's generateContent ------------------------------------------------------------------


@dataclass
class GoogleCall:
    path: str
    key: str | None
    body: dict[str, Any]

    @property
    def image_config(self) -> dict[str, Any]:
        config = self.body.get("generationConfig", {})
        return config.get("imageConfig") or config.get("image_config") or {}

    @property
    def texts(self) -> list[str]:
        return [p["text"] for c in self.body.get("contents", []) for p in c.get("parts", []) if "text" in p]

    @property
    def pictures(self) -> int:
        return sum(1 for c in self.body.get("contents", []) for p in c.get("parts", []) if "inlineData" in p)


def gemini_size(config: dict[str, Any]) -> tuple[int, int]:
    """What Gemini draws for an imageConfig (camelCase or snake_case): 1:1 and 1K unless told."""
    ratio = str(config.get("aspectRatio") or config.get("aspect_ratio") or "1:1")
    tier = str(config.get("imageSize") or config.get("image_size") or "1K").upper()
    w, h = (int(n) for n in ratio.split(":"))
    return SERVER_SIZES[(w, h)][tier if tier in TIERS else "1K"]


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "purple").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@dataclass
class FakeGoogle:
    calls: list[GoogleCall] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1beta"

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                call = GoogleCall(self.path, self.headers.get("x-goog-api-key"), body)
                fake.calls.append(call)
                if call.key == REJECTED_KEY:
                    error = {
                        "error": {"code": 401, "message": "API key not valid.", "status": "UNAUTHENTICATED"}
                    }
                    return self._send(401, json.dumps(error).encode())
                data = base64.b64encode(png(gemini_size(call.image_config))).decode()
                count = int(body.get("generationConfig", {}).get("candidateCount") or 1)
                parts = [{"inlineData": {"mimeType": "image/png", "data": data}}]
                answer = {
                    "candidates": [
                        {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": i}
                        for i in range(count)
                    ],
                    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
                }
                self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# --- the proxy ---------------------------------------------------------------------------------------------


def litellm_executable() -> Path | None:
    named = os.environ.get("IMAGE_GEN_LITELLM")
    path = Path(named) if named else ROOT / ".venv-litellm" / "bin" / "litellm"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_yaml(emulator_url: str, google_url: str) -> str:
    """The proxy's config; JSON is valid YAML, so no YAML library is needed here."""
    closed = f"http://127.0.0.1:{free_port()}"

    def entry(name: str, model: str, base: str, key: str = "any") -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": model, "api_base": base, "api_key": key}}

    config = {
        "model_list": [
            entry(PRO, f"openai/{PRO}", emulator_url),
            entry(FLASH, f"openai/{FLASH}", emulator_url),
            entry(GOOGLE, f"gemini/{GOOGLE}", google_url),
            entry(DOWN_OPENAI, f"openai/{PRO}", f"{closed}/v1"),
            entry(DOWN_GOOGLE, f"gemini/{GOOGLE}", f"{closed}/v1beta"),
            entry(REJECTED, f"gemini/{GOOGLE}", google_url, REJECTED_KEY),
        ],
        "litellm_settings": {"drop_params": True, "num_retries": 0, "request_timeout": 600},
        "general_settings": {"master_key": MASTER_KEY},
    }
    return json.dumps(config, indent=1)


@dataclass
class Gateway:
    url: str  # the base URL clients use, ending in /v1
    emulator: Emulator
    google: FakeGoogle
    log: Path

    def posts(self) -> list[Any]:
        return [r for r in self.emulator.requests if r.route in ("generations", "edits", "chat")]


def wait_listening(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"LiteLLM exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health/liveliness", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"LiteLLM did not listen within {START_TIMEOUT:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    executable = litellm_executable()
    if executable is None:
        reason = "LiteLLM is not installed: set IMAGE_GEN_LITELLM or create .venv-litellm (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("litellm")
    with Emulator() as emulator:
        google = FakeGoogle().start()
        config = folder / "config.yaml"
        config.write_text(config_yaml(emulator.base_url, google.url))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IMAGE_GEN_", "LITELLM_"))}
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", HOME=str(folder), NO_PROXY="127.0.0.1,localhost")
        log = folder / "litellm.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=folder,
            )
        try:
            root = f"http://127.0.0.1:{port}"
            wait_listening(root, proc, log)
            yield Gateway(root + "/v1", emulator, google, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
            google.stop()


def gen(gw: Gateway, out: Path, *args: str, key: str | None = MASTER_KEY):
    keys = ("--api-key", key) if key else ()
    return cli(*args, "--base-url", gw.url, *keys, "--output-dir", str(out))


# --- geometry --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ROUTES)
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("ratio", RATIO_NAMES)
def test_every_ratio_and_tier_arrives_at_the_exact_gemini_size(gateway, out_dir, model, ratio, tier):
    run = gen(
        gateway, out_dir, "a lighthouse", "--model", model, "--aspect-ratio", ratio, "--resolution", tier
    )
    assert run.code == 0, run.stderr
    w, h = (int(n) for n in ratio.split(":"))
    assert picture(run.paths[0]).size == SERVER_SIZES[(w, h)][tier]
    assert "ignored" not in run.stderr


@pytest.mark.parametrize("model", ROUTES)
@pytest.mark.parametrize(
    ("ratio", "tier"), [*((r, "1K") for r in RATIO_NAMES), ("16:9", "2K"), ("16:9", "4K"), ("3:4", "2K")]
)
def test_the_images_api_gets_the_gemini_pixel_size_and_tier(gateway, out_dir, model, ratio, tier):
    run = gen(
        gateway,
        out_dir,
        "a harbour",
        "--model",
        model,
        "--route",
        "images",
        "--resolution",
        tier,
        "--aspect-ratio",
        ratio,
    )
    assert run.code == 0, run.stderr
    w, h = (int(n) for n in ratio.split(":"))
    expected = SERVER_SIZES[(w, h)][tier]
    assert picture(run.paths[0]).size == expected
    if model == PRO:  # what reached the server behind the pass-through
        sent = gateway.posts()[-1]
        assert sent.body["size"] == f"{expected[0]}x{expected[1]}" and sent.body["image_size"] == tier
        assert (sent.aspect_ratio, sent.image_size) == (ratio, tier)
    else:  # what LiteLLM made of it for Google
        assert gateway.google.calls[-1].image_config == {"aspectRatio": ratio, "imageSize": tier}


def test_sixteen_by_nine_at_2k_is_2752_by_1536_on_both_routes(gateway, out_dir):
    for model in ROUTES:
        for route in ("images", "chat"):
            run = gen(
                gateway,
                out_dir,
                "a bay",
                "--model",
                model,
                "--route",
                route,
                "--aspect-ratio",
                "16:9",
                "--resolution",
                "2k",
            )
            assert run.code == 0, run.stderr
            assert picture(run.paths[0]).size == (2752, 1536), (model, route)


@pytest.mark.parametrize("model", ROUTES)
def test_an_edit_of_a_1200_by_900_photo_comes_back_1200_by_896(gateway, out_dir, tmp_path, model):
    photo = write_picture(tmp_path / "photo.png", (1200, 900))
    run = gen(gateway, out_dir, "as a watercolour", "--model", model, "--image", str(photo), "-v")
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).size == (1200, 896)
    assert "/images/edits" in run.stderr
    if model == PRO:
        sent = gateway.posts()[-1]
        assert sent.route == "edits" and sent.aspect_ratio == "4:3" and len(sent.files) == 1
    else:
        assert gateway.google.calls[-1].pictures == 1


@pytest.mark.parametrize("model", ROUTES)
def test_an_edit_with_two_pictures_sends_both(gateway, out_dir, tmp_path, model):
    main = write_picture(tmp_path / "main.png", (1200, 900))
    other = write_picture(tmp_path / "other.jpg", (640, 640), "JPEG")
    run = gen(gateway, out_dir, "combine them", "--model", model, "--image", str(main), "--image", str(other))
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).size == (1200, 896)
    if model == PRO:
        sent = gateway.posts()[-1]
        assert [(f[0], f[3]) for f in sent.files] == [("image[]", "PNG"), ("image[]", "JPEG")]
    else:
        assert gateway.google.calls[-1].pictures == 2


@pytest.mark.parametrize("model", ROUTES)
def test_chat_with_a_picture_keeps_the_ratio_and_tier(gateway, out_dir, tmp_path, model):
    photo = write_picture(tmp_path / "photo.png", (900, 1200))
    run = gen(
        gateway,
        out_dir,
        "as a poster",
        "--model",
        model,
        "--route",
        "chat",
        "--image",
        str(photo),
        "--resolution",
        "2k",
    )
    assert run.code == 0, run.stderr
    assert picture(run.paths[0]).size == (1792, 2400)


# --- the prompt ------------------------------------------------------------------------------------------

HOSTILE_PROMPT = 'a "quoted" fox, $(rm -rf ~) and `ls` 🦊\nsecond line: ünïcödé'


def test_the_prompt_reaches_the_server_behind_the_pass_through_verbatim(gateway, out_dir):
    run = gen(gateway, out_dir, HOSTILE_PROMPT, "--model", PRO, "-v")
    assert run.code == 0, run.stderr
    assert gateway.posts()[-1].effective_prompt == HOSTILE_PROMPT
    assert "LiteLLM drops `style`" in run.stderr  # -v says why chat was chosen


def test_the_prompt_reaches_google_verbatim(gateway, out_dir):
    run = gen(gateway, out_dir, HOSTILE_PROMPT, "--model", GOOGLE)
    assert run.code == 0, run.stderr
    assert gateway.google.calls[-1].texts == [HOSTILE_PROMPT]


def test_on_the_images_api_an_antigravity_upstream_would_rewrite_the_prompt(gateway, out_dir):
    """Why text-to-image goes by chat through LiteLLM: it drops `style`, the upstream then adds its words."""
    run = gen(gateway, out_dir, "a plain fox", "--model", PRO, "--route", "images")
    assert run.code == 0, run.stderr
    sent = gateway.posts()[-1]
    assert "style" not in sent.body and sent.effective_prompt.startswith("a plain fox, (vivid colors")


# --- many pictures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ROUTES)
def test_count_gives_distinct_exact_pictures(gateway, out_dir, model):
    run = gen(gateway, out_dir, "three foxes", "--model", model, "-n", "3", "--aspect-ratio", "3:2")
    assert run.code == 0, run.stderr
    assert len(set(run.paths)) == 3 and all(picture(p).size == (1264, 848) for p in run.paths)


def test_a_batch_through_the_gateway(gateway, out_dir, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"prompt": "a fox at dawn", "aspect_ratio": "16:9"},
        {"prompt": "a fox at noon", "aspect_ratio": "4:5", "resolution": "2k"},
        {"prompt": "a fox at dusk", "aspect_ratio": "21:9"},
    ]
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    options = ("--base-url", gateway.url, "--api-key", MASTER_KEY, "--output-dir", str(out_dir))
    run = cli("batch", str(jobs), *options, "--model", GOOGLE)
    assert run.code == 0, run.stderr
    sizes = sorted(picture(p).size for p in run.paths)
    assert sizes == sorted([(1376, 768), (1856, 2304), (1584, 672)])


# --- doctor ----------------------------------------------------------------------------------------------


def test_doctor_names_the_gateway_its_image_models_and_routes(gateway, out_dir):
    run = cli("doctor", "--base-url", gateway.url, "--api-key", MASTER_KEY, "--output-dir", str(out_dir))
    assert run.code == 0, run.stdout + run.stderr
    assert "LiteLLM gateway" in run.stdout
    assert f"{GOOGLE}" in run.stdout and f"using {PRO}" in run.stdout
    for route in ("/images/generations", "/images/edits", "/chat/completions"):
        assert f"({route}): offered" in run.stdout


def test_doctor_with_the_wrong_key_exits_4_and_still_names_the_gateway(gateway, out_dir):
    run = cli("doctor", "--base-url", gateway.url, "--api-key", "sk-wrong", "--output-dir", str(out_dir))
    assert run.code == 4, run.stdout
    assert "[FAIL] API key" in run.stdout and "master key" in run.stdout and "LiteLLM" in run.stdout
    assert "sk-wrong" not in run.stdout + run.stderr


# --- errors ----------------------------------------------------------------------------------------------


def test_a_wrong_key_exits_4_at_once(gateway, out_dir):
    run = gen(gateway, out_dir, "x", "--model", PRO, "-v", key="sk-wrong")
    assert run.code == 4, run.stderr
    assert "No connected db." in run.stderr and "--api-key" in run.stderr
    assert "retrying" not in run.stderr and "sk-wrong" not in run.stderr


def test_the_gateways_own_upstream_key_refused_exits_4_saying_whose_key(gateway, out_dir):
    run = gen(gateway, out_dir, "x", "--model", REJECTED)
    assert run.code == 4, run.stderr
    assert "your key was accepted" in run.stderr and "gateway's configuration" in run.stderr


def test_an_unknown_model_exits_2_naming_the_models_on_offer_before_any_request(gateway, out_dir):
    before = len(gateway.posts()), len(gateway.google.calls)
    run = gen(gateway, out_dir, "x", "--model", "gemini-9-ultra-image")
    assert run.code == 2, run.stderr
    assert "not offered" in run.stderr and PRO in run.stderr and GOOGLE in run.stderr
    assert (len(gateway.posts()), len(gateway.google.calls)) == before
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("model", (DOWN_OPENAI, DOWN_GOOGLE))
def test_an_unreachable_upstream_ends_after_a_few_attempts_with_exit_3(gateway, out_dir, model):
    run = gen(gateway, out_dir, "x", "--model", model, "--timeout", "300", "-v")
    assert run.code == 3, run.stderr
    assert "the gateway cannot reach its upstream" in run.stderr
    assert "attempt 3:" in run.stderr and "attempt 4:" not in run.stderr


def test_the_same_bare_500_again_and_again_stops_after_a_few_attempts(gateway, out_dir):
    """LiteLLM 1.106.2 without a database answers a request with no key at all by crashing: a bare 500."""
    run = gen(gateway, out_dir, "x", "--model", PRO, "--timeout", "300", "-v", key=None)
    assert run.code == 5, run.stderr
    assert "Internal Server Error" in run.stderr and "still failing after 4 attempt(s)" in run.stderr


# --- what was learned is checked -------------------------------------------------------------------------


def test_a_cached_kind_that_an_answer_contradicts_is_learned_again(gateway, out_dir):
    cache = Path(os.environ["IMAGE_GEN_CACHE_DIR"]) / "servers.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    stale = {gateway.url: {"kind": "antigravity", "models": [PRO], "checked_at": time.time()}}
    cache.write_text(json.dumps(stale))
    run = gen(gateway, out_dir, "a fox", "--model", PRO, "-v")
    assert run.code == 0, run.stderr
    assert "checking the server again" in run.stderr and "LiteLLM's headers" in run.stderr
    assert json.loads(cache.read_text())[gateway.url]["kind"] == "litellm"
    again = gen(gateway, out_dir, HOSTILE_PROMPT, "--model", PRO)
    assert again.code == 0 and gateway.posts()[-1].effective_prompt == HOSTILE_PROMPT
