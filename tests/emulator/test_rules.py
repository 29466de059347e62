"""Antigravity's request rules, as the emulator applies them (pure functions; see docs/server-api.md §3)."""

from __future__ import annotations

import json

import pytest

from image_gen_local.emulator.intake import FormPart, split_edit_form
from image_gen_local.emulator.replies import chat_stream, markdown_image
from image_gen_local.emulator.rules import (
    Geometry,
    aspect_ratio_from_size,
    clean_model_name,
    model_list,
    parse_form_n,
    parse_json_n,
    quota_bucket,
    resolve_geometry,
    rewrite_edit_prompt,
    rewrite_generation_prompt,
)

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
VIVID = ", (vivid colors, dramatic lighting, rich details)"
HD = ", (high quality, highly detailed, 4k resolution, hdr)"


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("16:9", "16:9"),
        ("21:9", "21:9"),
        ("5:4", "5:4"),
        ("1024x1024", "1:1"),
        ("256x256", "1:1"),
        ("1792x1024", "16:9"),
        ("1024x1792", "9:16"),
        ("1536x1024", "3:2"),
        ("1024x1536", "2:3"),
        ("1920x1080", "16:9"),
        ("1280x720", "16:9"),
        ("1080x1920", "9:16"),
        ("1024x768", "4:3"),
        ("768x1024", "3:4"),
        ("1280x1024", "5:4"),
        ("1024x1280", "4:5"),
        ("2560x1080", "21:9"),
        ("1080x1440", "3:4"),
        ("3440x1440", "1:1"),  # 2.39 is not within 0.05 of anything: 1:1, not the nearest
        ("2048x1024", "1:1"),
        ("1024x2048", "1:1"),
        ("1200x628", "1:1"),
        ("auto", "1:1"),
        ("1024X1024", "1:1"),  # only a lowercase x splits
        ("1920X1080", "1:1"),
        (" 1920x1080", "1:1"),
        ("1920 x 1080", "1:1"),
        ("1920×1080", "1:1"),
        ("16/9", "1:1"),
        ("0x100", "1:1"),
        ("", "1:1"),
        ("1920.0x1080", "16:9"),
    ],
)
def test_aspect_ratio_from_size_copies_the_server(size: str, ratio: str) -> None:
    assert aspect_ratio_from_size(size) == ratio


def test_clean_model_name_strips_suffixes_repeatedly() -> None:
    assert clean_model_name("gemini-3-pro-image-16x9-4k") == PRO
    assert clean_model_name("Gemini-3-Pro-Image-4K-16-9") == PRO
    assert clean_model_name("gemini-3.1-flash-image-hd") == FLASH
    assert clean_model_name("gemini-3-pro-image-2k-21x9-standard") == PRO
    assert clean_model_name("gemini-3-pro-image-preview") == "gemini-3-pro-image-preview"
    assert clean_model_name(FLASH) == FLASH


def test_resolve_geometry_priorities() -> None:
    # size beats the model's ratio hint; image_size > quality > model suffix
    assert resolve_geometry("gemini-3-pro-image-16x9-2k", None, None, None) == Geometry("16:9", "2K")
    assert resolve_geometry("gemini-3-pro-image-16x9-2k", "1:1", None, None) == Geometry("1:1", "2K")
    assert resolve_geometry("gemini-3-pro-image-4k", None, "medium", None) == Geometry("1:1", "2K")
    assert resolve_geometry(PRO, None, "HD", None) == Geometry("1:1", "4K")
    assert resolve_geometry(PRO, None, "hd", "1k") == Geometry("1:1", "1K")
    assert resolve_geometry("gemini-3-pro-image-hd", None, None, None).tier == "4K"
    # any quality string, even one with no meaning, stops the suffix from choosing the tier
    high = resolve_geometry("gemini-3-pro-image-4k", None, "high", None)
    assert high.image_size is None and high.tier == "1K"
    # an unknown image_size is forwarded as is and upstream falls back to 1K
    odd = resolve_geometry(PRO, "16:9", None, "8k")
    assert (odd.image_size, odd.tier, odd.pixels) == ("8K", "1K", (1376, 768))
    assert resolve_geometry(PRO, "21:9", None, "4K").pixels == (6336, 2688)


def test_quota_bucket() -> None:
    assert quota_bucket(PRO) == PRO
    assert quota_bucket("gemini-2.5-flash-image") == FLASH
    assert quota_bucket("gemini-3-pro-image-preview") == PRO
    assert quota_bucket("my-image") == PRO
    assert quota_bucket("dall-e-3") == "dall-e-3"


def test_prompt_rewriting() -> None:
    assert rewrite_generation_prompt("a fox", None, "vivid") == "a fox" + VIVID
    assert rewrite_generation_prompt("a fox", "hd", "vivid") == "a fox" + HD + VIVID
    assert rewrite_generation_prompt("a fox", "HD", "none") == "a fox"  # hd is case-sensitive here
    assert rewrite_generation_prompt("a fox", None, "natural").endswith(
        "(natural lighting, realistic, photorealistic)"
    )
    assert rewrite_edit_prompt("a fox", None) == "a fox"
    assert rewrite_edit_prompt("a fox", "") == "a fox, style: "
    assert rewrite_edit_prompt("a fox", "watercolor") == "a fox, style: watercolor"


def test_n_parsing() -> None:
    assert [parse_json_n(v) for v in (2, 0, None, "2", 2.0, True, -1)] == [2, 0, 1, 1, 1, 1, 1]
    assert [parse_form_n(v) for v in ("3", "+2", "x", "", None, " 2")] == [3, 2, 1, 1, 1, 1]


def test_split_edit_form_follows_the_server() -> None:
    parts = [
        FormPart("prompt", None, None, b"p"),
        FormPart("image", "image/png", "a.png", b"first"),
        FormPart("image", "image/webp", "b.webp", b"second"),
        FormPart("image_size", None, None, b"2K"),
        FormPart("image[]", None, "c.jpg", b"ref"),
        FormPart("mask", None, "m.png", b"mask"),
    ]
    form = split_edit_form(parts)
    assert form.texts == {"prompt": "p", "image_size": "2K"}
    # main image (the last `image` wins), then the mask, then references; defaults png/png/jpeg
    assert [(i.label, i.declared_mime, i.data) for i in form.images] == [
        ("image", "image/webp", b"second"),
        ("mask", "image/png", b"mask"),
        ("image[]", "image/jpeg", b"ref"),
    ]


def test_reply_builders() -> None:
    assert markdown_image("image/png", "QUJD") == "![image](data:image/png;base64,QUJD)"
    events = chat_stream("m", "hello", 1, "chatcmpl-1").decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant"}, {"content": "hello"}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    flash_only = [m["id"] for m in model_list((FLASH,))["data"]]
    assert flash_only == [FLASH, "gemini-3-flash"]
