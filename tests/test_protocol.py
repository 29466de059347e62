from pathlib import Path

import pytest

from image_gen_local.emulator.rules import aspect_ratio_from_size
from image_gen_local.geometry import Ratio, plan
from image_gen_local.images import Upload
from image_gen_local.protocol import asked_geometry, build_call, geometry_warnings, routes_for
from image_gen_local.upstream import (
    ANTIGRAVITY,
    CHAT,
    CLIPROXYAPI,
    IMAGES,
    LITELLM,
    OPENAI,
    RATIO_NAMES,
    SERVER_SIZES,
    TIERS,
    UNKNOWN,
)

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
        "size": "5504x3072",  # the model's own pixel size for 16:9 at 4K (was "16:9" before gateways)
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
    assert call.form["size"] == "5504x3072"
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


@pytest.mark.parametrize("ratio", RATIO_NAMES)
@pytest.mark.parametrize("tier", TIERS)
def test_antigravity_reads_every_gemini_pixel_size_as_the_same_ratio(ratio, tier):
    """Sending `size: "2752x1536"` to Antigravity gives exactly what `size: "16:9"` gave (its 0.05 rule)."""
    w, h = (int(n) for n in ratio.split(":"))
    call = build_call(IMAGES, ANTIGRAVITY, "x", "gemini-3-pro-image", plan(Ratio.of(w, h), tier))
    assert call.json["size"] == "{}x{}".format(*SERVER_SIZES[(w, h)][tier])
    assert aspect_ratio_from_size(call.json["size"]) == ratio and call.json["image_size"] == tier


# (model, server kind) -> the size asked on /images/generations, and the fields beside it
GENERATIONS = [
    ("gemini-3-pro-image", LITELLM, "2752x1536", {"image_size": "2K"}),
    ("gemini-3-pro-image-preview", OPENAI, "2752x1536", {"image_size": "2K", "style": "none"}),
    ("gemini-3-pro-image-16x9", UNKNOWN, "2752x1536", {"image_size": "2K", "style": "none"}),
    ("my-alias", ANTIGRAVITY, "2752x1536", {"image_size": "2K", "style": "none"}),
    ("my-alias", LITELLM, "1536x1024", {}),
    ("gpt-image-1", OPENAI, "1536x1024", {}),
    ("openai/dall-e-3", LITELLM, "1536x1024", {}),
]


@pytest.mark.parametrize(("model", "kind", "size", "extra"), GENERATIONS)
def test_geometry_follows_the_model_family_not_the_server(model, kind, size, extra):
    call = build_call(IMAGES, kind, "x", model, plan(Ratio(16, 9), "2K"))
    assert call.json["size"] == size
    for key, value in extra.items():
        assert call.json[key] == value
    if kind == LITELLM or size == "1536x1024":  # LiteLLM drops style (and refuses it without drop_params)
        assert "style" not in call.json and "response_format" not in call.json
    assert size in call.note()


EDIT_PARTS = [
    (ANTIGRAVITY, ["image", "image1"]),
    (LITELLM, ["image[]"] * 2),
    (UNKNOWN, ["image[]"] * 2),
    (OPENAI, ["image[]"] * 2),
]


@pytest.mark.parametrize(("kind", "names"), EDIT_PARTS)
def test_edits_use_parts_every_gateway_keeps_unless_the_server_is_antigravity(kind, names):
    call = build_call(
        IMAGES, kind, "x", "gemini-3-pro-image", plan(Ratio(4, 3), "1K"), (_img("a"), _img("b"))
    )
    assert [f.field for f in call.files] == names
    assert call.form["size"] == "1200x896" and call.form["aspect_ratio"] == "4:3"


def test_through_litellm_text_to_image_goes_by_chat_first():
    assert routes_for(LITELLM, "gemini-3-pro-image", False)[0] == [CHAT, IMAGES]
    assert routes_for(LITELLM, "gemini-3-pro-image", True)[0] == [IMAGES, CHAT]  # edits never rewrite
    assert routes_for(LITELLM, "gpt-image-1", False)[0] == [IMAGES, CHAT]
    assert routes_for(ANTIGRAVITY, "gemini-3-pro-image", False)[0] == [IMAGES, CHAT]
    assert routes_for(CLIPROXYAPI, "gemini-3-pro-image", False)[0] == [CHAT]


def test_chat_through_a_gateway_carries_every_spelling_of_the_geometry():
    call = build_call(CHAT, LITELLM, "x", "gemini-3-pro-image", PLAN)
    assert call.json["size"] == "16:9" and call.json["imageSize"] == "4K"
    assert call.json["image_config"] == {"aspect_ratio": "16:9", "image_size": "4K"}


WIDE_2K = plan(Ratio(16, 9), "2K")
GEMINI_ASKED = asked_geometry("gemini-3-pro-image", LITELLM, WIDE_2K)
OPENAI_ASKED = asked_geometry("gpt-image-1", OPENAI, WIDE_2K)

# (what was asked, what came back) -> the start of every warning, in order
WARNINGS = [
    ("exactly what was asked", GEMINI_ASKED, (2752, 1536), []),
    ("the tier lost, the ratio kept", GEMINI_ASKED, (1376, 768), ["the server ignored resolution 2K"]),
    ("the ratio lost, the tier kept", GEMINI_ASKED, (2048, 2048), ["the server ignored aspect ratio 16:9"]),
    ("both lost", GEMINI_ASKED, (1024, 1024),
     ["the server ignored aspect ratio 16:9", "the server ignored resolution 2K"]),
    ("OpenAI's size as asked: the client's choice, not the server's", OPENAI_ASKED, (1536, 1024),
     ["gpt-image-1 is an OpenAI image model"]),
    ("OpenAI's size ignored", OPENAI_ASKED, (1024, 1024),
     ["gpt-image-1 is an OpenAI image model", "the server ignored aspect ratio 3:2",
      "the server sent 1024x1024, not the 1536x1024"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("asked", "actual", "starts"), [c[1:] for c in WARNINGS], ids=[c[0] for c in WARNINGS]
)
def test_warnings_compare_the_answer_with_what_was_sent(asked, actual, starts):
    notes = geometry_warnings(WIDE_2K, asked, actual)
    assert [n[: len(s)] for n, s in zip(notes, starts, strict=False)] == starts and len(notes) == len(starts)
