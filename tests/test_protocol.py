from pathlib import Path

from image_gen_local.geometry import Ratio, plan
from image_gen_local.images import Upload
from image_gen_local.protocol import build_call
from image_gen_local.upstream import ANTIGRAVITY, CHAT, CLIPROXYAPI, IMAGES, OPENAI

PLAN = plan(Ratio(16, 9), "4K")


def _img(name: str, mime: str = "image/png") -> Upload:
    return Upload(Path(name), b"bytes" * 100, mime, 10, 10, (10, 10))


def test_antigravity_generation_sends_prompt_verbatim_and_geometry():
    call = build_call(IMAGES, ANTIGRAVITY, "a cat", "gemini-3-pro-image", PLAN)
    assert call.path == "/images/generations"
    assert call.json == {
        "model": "gemini-3-pro-image",
        "prompt": "a cat",
        "n": 1,
        "size": "16:9",
        "image_size": "4K",
        "response_format": "b64_json",
        "style": "none",
    }
    assert "quality" not in call.json


def test_antigravity_edits_main_then_references_with_real_mimes():
    call = build_call(
        IMAGES, ANTIGRAVITY, "anime", "m", PLAN, (_img("a.png"), _img("b.jpg", "image/jpeg"), _img("c.png"))
    )
    assert call.path == "/images/edits"
    assert [(f.field, f.mime) for f in call.files] == [
        ("image", "image/png"),
        ("image1", "image/jpeg"),
        ("image2", "image/png"),
    ]
    assert call.form["aspect_ratio"] == "16:9" and call.form["image_size"] == "4K"
    assert "style" not in call.form  # on edits, any style is appended to the prompt


def test_chat_for_antigravity_and_cliproxyapi():
    call = build_call(CHAT, ANTIGRAVITY, "a cat", "gemini-3-pro-image", PLAN, (_img("a.png"),))
    assert call.json["size"] == "16:9" and call.json["imageSize"] == "4K"
    parts = call.json["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "a cat"}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    call = build_call(CHAT, CLIPROXYAPI, "a cat", "gemini-3.1-flash-image", PLAN)
    assert call.json["image_config"] == {"aspect_ratio": "16:9", "image_size": "4K"}
    assert "imageSize" not in call.json


def test_openai_gets_only_openai_fields():
    call = build_call(IMAGES, OPENAI, "a cat", "gpt-image-1", plan(Ratio(3, 2), "1K"))
    assert call.json == {"model": "gpt-image-1", "prompt": "a cat", "n": 1, "size": "1536x1024"}


def test_describe_redacts_and_summarises():
    call = build_call(CHAT, ANTIGRAVITY, "a cat", "m", PLAN, (_img("a.png"),))
    text = str(call.describe("http://h/v1", has_key=True))
    assert "Bearer ***" in text and "base64,… " in text
