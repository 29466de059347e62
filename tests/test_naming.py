from datetime import datetime

import pytest

from image_gen_local.naming import MAX_SLUG, numbered, picture_stem, slugify


def test_ascii_prompt():
    assert slugify("A cute cat, cartoon style!") == "a-cute-cat-cartoon-style"


def test_chinese_prompt_keeps_its_characters():
    assert slugify("猫咪在窗台上，卡通风格") == "猫咪在窗台上-卡通风格"


@pytest.mark.parametrize(
    "prompt",
    ["🐱🌅", "!!!", "   ", "\u200f\u202e", "../../etc/passwd", "C:\\Windows\\x", "con", "نقاشی گربه", "ผีเสื้อ"],
)
def test_slug_is_never_empty_and_safe(prompt):
    slug = slugify(prompt)
    assert slug
    assert not set(slug) & set('/\\:*?"<>|\0')
    assert not slug.startswith(("-", ".")) and slug.lower() not in {"con", "nul", "prn", "aux"}
    assert len(slug) <= MAX_SLUG + len("-picture")


def test_emoji_become_words():
    assert slugify("🐱") == "cat-face"


def test_long_prompt_is_cut_at_a_word():
    slug = slugify("a very detailed illustration of a mountain landscape at dawn with mist " * 4)
    assert len(slug) <= MAX_SLUG
    assert not slug.endswith("-")
    assert "mountain" in slug


def test_stem_and_numbering():
    stem = picture_stem("Mountains", datetime(2026, 11, 24, 9, 5, 3))
    assert stem == "20261124-090503-mountains"
    assert numbered(stem, 1) == stem
    assert numbered(stem, 3) == stem + "-3"
