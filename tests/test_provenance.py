"""Recipes: what they hold, how they are written into each format, and that other tools read them."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from xml.sax.saxutils import quoteattr

import pytest
from PIL import Image

from image_gen_local import containers, provenance
from image_gen_local.provenance import ALGORITHMIC_MEDIA, TRAINED_MEDIA, Made

KEY = "sk-recipe-secret-0123456789"


def made(**changes) -> Made:
    fields = dict(
        prompt="a lighthouse at dusk, watercolor; 灯塔",
        requested={"size": None, "aspect_ratio": "3:2", "resolution": "2K", "model": "gemini-3-pro-image"},
        asked={"width": 2528, "height": 1696, "ratio": "3:2", "tier": "2K"},
        received={"width": 2528, "height": 1696, "format": "PNG"},
        delivered={"width": 2528, "height": 1696, "format": "PNG", "crop": None, "resize": None},
        model="gemini-3-pro-image",
        route="images",
        server="http://127.0.0.1:8045/v1",
        seconds=12.34567,
        retries=1,
        warnings=["a retry"],
        inputs=[{"name": "photo.jpg", "sha256": "ab" * 32}],
        synthetic=False,
        made="2026-11-25T10:00:00+01:00",
    )
    fields.update(changes)
    return Made(**fields)


def picture(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "teal").save(out, fmt)
    return out.getvalue()


def test_a_recipe_says_what_it_is_and_rounds_the_time():
    recipe = made().as_recipe()
    assert recipe["format"] == provenance.RECIPE_FORMAT and recipe["tool"].startswith("image-gen-local ")
    assert recipe["seconds"] == 12.346 and recipe["inputs"][0]["name"] == "photo.jpg"
    json.dumps(recipe)  # plain JSON


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://user:pass@127.0.0.1:8045/v1", "http://127.0.0.1:8045/v1"),
        ("https://proxy.example/v1?key=secret#frag", "https://proxy.example/v1"),
        ("http://[::1]:8045/v1", "http://[::1]:8045/v1"),
        ("http://:token@host/v1", "http://host/v1"),
    ],
)
def test_the_server_address_loses_every_secret_it_could_hold(url, public):
    assert provenance.public_url(url) == public
    assert made(server=url).as_recipe()["server"] == public


def test_a_key_is_scrubbed_from_every_text_even_the_prompt():
    recipe = made(prompt=f"draw {KEY}", warnings=[f"server said {KEY}"]).as_recipe(KEY)
    assert KEY not in json.dumps(recipe) and "***" in recipe["prompt"]


def test_a_short_key_does_not_mangle_ordinary_words():
    assert made(prompt="a tmp folder").as_recipe("tmp")["prompt"] == "a tmp folder"


def test_a_mis_encoded_prompt_is_stored_as_valid_text():
    recipe = made(prompt="bad \udcff byte").as_recipe()
    recipe["prompt"].encode("utf-8")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_the_recipe_round_trips_through_every_format(fmt):
    recipe = made().as_recipe()
    labelled = provenance.label(picture(fmt), recipe)
    assert provenance.read_recipe(labelled) == recipe


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize(("synthetic", "source"), [(False, TRAINED_MEDIA), (True, ALGORITHMIC_MEDIA)])
def test_pillow_reads_the_prompt_and_the_digital_source_type(fmt, synthetic, source):
    recipe = made(synthetic=synthetic).as_recipe()
    image = Image.open(io.BytesIO(provenance.label(picture(fmt), recipe)))
    description = image.getxmp()["xmpmeta"]["RDF"]["Description"]
    assert description["DigitalSourceType"] == source
    text = description["description"]["Alt"]["li"]["text"]
    assert recipe["prompt"] in text and ("SYNTHETIC" in text) == synthetic


def test_a_png_shows_a_description_and_a_comment_in_plain_text_chunks():
    recipe = made(synthetic=True).as_recipe()
    image = Image.open(io.BytesIO(provenance.label(picture("PNG"), recipe)))
    assert image.info["Description"].startswith("SYNTHETIC") and recipe["prompt"] in image.info["Description"]
    assert "no AI model" in image.info["Comment"]


def exiftool() -> str:
    found = shutil.which("exiftool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("exiftool is missing: .ci/run installs it (Debian package libimage-exiftool-perl)")
        pytest.skip("exiftool is not installed (apt-get install libimage-exiftool-perl)")
    return found


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_exiftool_reads_the_prompt_and_the_digital_source_type(fmt, tmp_path):
    recipe = made().as_recipe()
    path = tmp_path / f"p.{fmt.lower()}"
    path.write_bytes(provenance.label(picture(fmt), recipe))
    argv = [exiftool(), "-j", "-XMP-dc:Description", "-XMP-iptcExt:DigitalSourceType", str(path)]
    [tags] = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout)
    assert tags["Description"] == recipe["prompt"] and tags["DigitalSourceType"] == TRAINED_MEDIA


def test_a_huge_prompt_is_cut_to_fit_a_jpeg_and_the_recipe_says_so():
    prompt = "猫" * 30_000  # 90 kB of UTF-8: more than one JPEG segment holds
    recipe = made(prompt=prompt).as_recipe()
    back = provenance.read_recipe(provenance.label(picture("JPEG"), recipe))
    assert back is not None and back["prompt_cut"] == 30_000 and prompt.startswith(back["prompt"])
    whole = provenance.read_recipe(provenance.label(picture("PNG"), recipe))
    assert whole == recipe  # PNG and WebP have room


def test_a_packet_declaring_entities_is_not_read():
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>'
    assert provenance.recipe_from_xmp(bomb) is None


def test_a_recipe_written_by_another_tool_as_an_attribute_is_read():
    recipe = made().as_recipe()
    value = quoteattr(provenance.as_text(recipe))
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description xmlns:igl="{provenance.XMP_NAMESPACE}" igl:recipe={value}/></rdf:RDF></x:xmpmeta>'
    )
    assert provenance.recipe_from_xmp(packet.encode()) == recipe


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '{"prompt": "no format"}', '{"format": "x", "prompt": 1}']
)
def test_text_that_is_not_one_of_our_recipes_is_no_recipe(text):
    assert provenance.parse(text) is None


def test_a_picture_without_a_recipe_has_none_and_bytes_that_are_no_picture_are_refused():
    assert provenance.read_recipe(picture("PNG")) is None
    with pytest.raises(ValueError):
        provenance.read_recipe(b"hello")


def test_formats_that_cannot_carry_a_recipe_are_refused_for_labelling():
    with pytest.raises(ValueError):
        provenance.label(picture("BMP"), made().as_recipe())
    assert containers.sniff(picture("BMP")) is None
