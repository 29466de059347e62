"""The emulator's synthetic pictures: sizes, labels, a marking no crop removes, text in any script."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from helpers import cli
from image_gen_local.emulator.intake import ReceivedImage
from image_gen_local.emulator.lettering import Lettering, transliterate
from image_gen_local.emulator.plans import ImageJob
from image_gen_local.emulator.rules import Geometry
from image_gen_local.emulator.synthetic import encode_picture, marked_share, render_picture

PRO = "gemini-3-pro-image"


def test_largest_picture_has_the_servers_size_and_says_synthetic() -> None:
    job = ImageJob("generations", PRO, Geometry("21:9", "4K"), "a very wide landscape " * 30)
    data, mime = encode_picture(render_picture(job, 0), "png")
    image = Image.open(io.BytesIO(data))
    assert (image.size, mime) == ((6336, 2688), "image/png")
    assert image.info["Comment"] == "synthetic image, no AI model was used"


@pytest.mark.parametrize(("fmt", "mime"), [("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_other_formats_are_labelled_in_exif(fmt: str, mime: str) -> None:
    job = ImageJob("generations", PRO, Geometry("1:1", "1K"), "a cat")
    data, got = encode_picture(render_picture(job, 0), fmt)
    assert got == mime
    assert "synthetic" in str(Image.open(io.BytesIO(data)).getexif().get(0x010E))


# --- the marking survives the client's crops and resizes --------------------------------------------------


def grid_shares(image: Image.Image, n: int = 3) -> list[float]:
    w, h = image.size
    boxes = [(w * i // n, h * j // n, w * (i + 1) // n, h * (j + 1) // n) for i in range(n) for j in range(n)]
    return [marked_share(image.crop(box)) for box in boxes]


@pytest.mark.parametrize("size", ["1500x500", "3000x300", "100x1000", "800x600"])
def test_the_marking_survives_the_clients_crop_everywhere_in_the_picture(size, emulator, tmp_path):
    run = cli(
        "a banner of a paper boat",
        "--size",
        size,
        "--base-url",
        emulator.base_url,
        "--output-dir",
        str(tmp_path),
        "--json",
    )
    assert run.code == 0, run.stderr
    with Image.open(run.json["images"][0]["path"]) as saved:
        saved.load()
    assert saved.size == tuple(int(v) for v in size.split("x"))
    if size == "1500x500":  # 21:9 asked, cropped to 3:1: both banners are gone ...
        w, h = saved.size
        assert (
            marked_share(saved.crop((0, 0, w, 4))) < 0.5 and marked_share(saved.crop((0, h - 4, w, h))) < 0.5
        )
    assert min(grid_shares(saved)) > 0.005  # ... and the marks are still in every ninth of what is left


def test_a_picture_without_the_marking_measures_none() -> None:
    photo = Image.radial_gradient("L").resize((512, 512)).convert("RGB")
    assert marked_share(photo) == 0 and marked_share(Image.new("RGB", (64, 64), "navy")) == 0


# --- text in any script is legible ----------------------------------------------------------------------


def drawn(letters: Lettering, text: str) -> bytes:
    canvas = Image.new("RGB", (400, 80))
    letters.draw(ImageDraw.Draw(canvas), (10, 10), text, 40, (255, 255, 255))
    return canvas.tobytes()


BLANK = Image.new("RGB", (400, 80)).tobytes()


def test_pillows_own_font_draws_every_han_character_as_the_same_box() -> None:
    font = ImageFont.load_default(size=40)
    boxes = set()
    for char in "猫狗":
        canvas = Image.new("L", (80, 80))
        ImageDraw.Draw(canvas).text((10, 10), char, font=font, fill=255)
        boxes.add(canvas.tobytes())
    assert len(boxes) == 1  # the bug: tofu


@pytest.mark.parametrize("fonts", ["found here", "built-in only"])
def test_cjk_and_other_scripts_are_drawn_as_distinct_legible_text(fonts) -> None:
    letters = Lettering() if fonts == "found here" else Lettering(fonts=("",))
    pictures = {text: drawn(letters, text) for text in ("猫", "狗", "ねこ", "고양이", "Жук", "café", "🐱")}
    assert BLANK not in pictures.values()
    assert len(set(pictures.values())) == len(pictures)  # no two of them look alike: no tofu


def test_what_no_font_has_is_transliterated_and_said_so() -> None:
    letters = Lettering(fonts=("",))
    runs = letters.runs("a 猫咪 café")
    assert [(r.text, r.transliterated) for r in runs] == [
        ("a ", False),
        ("Mao Mi", True),
        (" caf", False),
        ("e", True),
    ]
    assert letters.foreign("a 猫咪 café") == 3
    assert transliterate("\ue000\u0301") == "U+E000 "  # no transliteration: its code point; marks dropped


def test_a_cjk_prompt_gets_its_note_when_it_is_transliterated() -> None:
    job = ImageJob("generations", PRO, Geometry("1:1", "1K"), "猫咪在窗台上，卡通风格")
    plain = render_picture(job, 0, letters=Lettering(fonts=("",)))
    assert 0.05 < marked_share(plain) < 0.5


def test_the_marks_cover_the_input_thumbnails_too() -> None:
    orange = io.BytesIO()
    Image.new("RGB", (600, 400), (255, 165, 0)).save(orange, "PNG")
    item = ReceivedImage("image", "image/png", orange.getvalue(), "PNG")
    job = ImageJob("edits", PRO, Geometry("1:1", "1K"), "make it blue", inputs=(item,))
    picture = render_picture(job, 0, [Image.open(orange).convert("RGBA")])
    is_orange = picture.point(
        [255 if v > 230 else 0 for v in range(256)]
        + [255 if 140 < v < 190 else 0 for v in range(256)]
        + [255 if v < 30 else 0 for v in range(256)]
    )
    box = ImageChops.multiply(ImageChops.multiply(*is_orange.split()[:2]), is_orange.split()[2]).getbbox()
    assert box is not None and marked_share(picture.crop(box)) > 0.005


def test_a_change_of_script_is_a_word_break_in_a_transliteration() -> None:
    assert transliterate("日本のアニメ") == "Ri Ben no anime"
    assert transliterate("猫咪，卡通") == "Mao Mi,Ka Tong"
