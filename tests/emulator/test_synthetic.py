"""The emulator's synthetic pictures."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from image_gen_local.emulator.rules import Geometry, ImageJob
from image_gen_local.emulator.synthetic import encode_picture, render_picture

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
