"""Every saved picture carries its recipe, through every path a picture takes: as the server sent it, cropped
or resized here, converted by `-o`, from a real model or the emulator; `image-gen show` reads it back."""

from __future__ import annotations

import base64
import io
import json
import socket
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from helpers import RawServer, cli, http_response, png_bytes
from image_gen_local.provenance import ALGORITHMIC_MEDIA, TRAINED_MEDIA, read_recipe
from image_gen_local.upstream import SYNTHETIC_LABEL


def gen(url: str, out: Path, *args: str):
    return cli(*args, "--base-url", url, "--output-dir", str(out))


def recipe_of(path: Path) -> dict:
    recipe = read_recipe(path.read_bytes())
    assert recipe is not None, path
    return recipe


def xmp_description(path: Path) -> dict:
    return Image.open(path).getxmp()["xmpmeta"]["RDF"]["Description"]


def test_a_picture_is_saved_with_its_recipe(emulator, out_dir):
    run = gen(emulator.root_url, out_dir, "a lighthouse at dusk", "--aspect-ratio", "3:2", "--json")
    [image] = run.json["images"]
    recipe = recipe_of(Path(image["path"]))
    assert recipe["prompt"] == "a lighthouse at dusk" and recipe["model"] == image["model"]
    assert recipe["route"] == image["route"] and recipe["server"] == emulator.base_url
    assert recipe["requested"]["aspect_ratio"] == "3:2" and recipe["asked"]["ratio"] == "3:2"
    assert recipe["delivered"] == {
        "width": image["width"],
        "height": image["height"],
        "format": "PNG",
        "crop": None,
        "resize": None,
    }
    assert recipe["synthetic"] is True and recipe["warnings"] == image["warnings"]
    assert recipe["seconds"] == image["seconds"] and recipe["retries"] == 0 and recipe["made"]


@pytest.mark.parametrize(
    ("args", "fmt", "size"),
    [
        (("-o", "{out}/cover.jpg"), "JPEG", (1024, 1024)),
        (("-o", "{out}/cover.webp", "--aspect-ratio", "16:9"), "WEBP", (1376, 768)),
        (("--size", "1500x500"), "PNG", (1500, 500)),  # cropped and resized here
        (("--aspect-ratio", "9:21"), "PNG", (590, 1376)),  # asked 9:16, cropped here
        (("--size", "600x900", "-o", "{out}/poster.jpeg"), "JPEG", (600, 900)),  # cropped, then converted
    ],
)
def test_the_recipe_survives_local_crops_and_conversions(emulator, out_dir, args, fmt, size):
    out_dir.mkdir()
    argv = [a.format(out=out_dir) for a in args]
    [path] = gen(emulator.root_url, out_dir, "a paper boat", *argv).paths
    image = Image.open(path)
    assert (image.format, image.size) == (fmt, size)
    recipe = recipe_of(path)
    assert recipe["delivered"]["format"] == fmt and recipe["received"]["format"] == "PNG"
    assert (recipe["delivered"]["width"], recipe["delivered"]["height"]) == size
    cropped = "--size" in argv or "9:21" in argv
    assert bool(recipe["delivered"]["crop"]) == cropped
    description = xmp_description(path)
    assert "a paper boat" in description["description"]["Alt"]["li"]["text"]
    assert description["DigitalSourceType"] == ALGORITHMIC_MEDIA  # the emulator: drawn, not a model


@pytest.mark.parametrize("answer", ["jpeg", "webp"])
def test_an_answer_kept_in_the_servers_format_carries_the_recipe(make_emulator, out_dir, answer):
    emu = make_emulator(image_format=answer)
    [path] = gen(emu.root_url, out_dir, "a red kite").paths
    assert path.suffix == (".jpg" if answer == "jpeg" else ".webp")
    assert recipe_of(path)["prompt"] == "a red kite"
    assert "SYNTHETIC" in xmp_description(path)["description"]["Alt"]["li"]["text"]


def serve_picture(data: bytes) -> RawServer:
    """A server that is not the emulator (no emulator header): /models 404, every picture `data`."""
    answer = http_response(200, json.dumps({"data": [{"b64_json": base64.b64encode(data).decode()}]}))

    def handler(conn: socket.socket, path: str, body: bytes) -> None:
        conn.sendall(http_response(404, "") if path.endswith("/models") else answer)

    return RawServer(handler)


def test_a_picture_from_a_model_is_labelled_as_made_by_a_trained_model(out_dir):
    server = serve_picture(png_bytes((1024, 1024)))
    try:
        [path] = gen(server.url, out_dir, "a real cat", "-o", str(out_dir.parent / "cat.jpg")).paths
    finally:
        server.close()
    recipe = recipe_of(path)
    assert recipe["synthetic"] is False and not any("SYNTHETIC" in w for w in recipe["warnings"])
    description = xmp_description(path)
    assert description["DigitalSourceType"] == TRAINED_MEDIA
    assert description["description"]["Alt"]["li"]["text"] == "a real cat"


def test_an_emulator_picture_without_the_emulator_header_is_still_known_as_synthetic(out_dir):
    """Through a gateway the header is gone; the emulator's own label in the picture says it."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SYNTHETIC_LABEL)
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024), "teal").save(buffer, "PNG", pnginfo=info)
    server = serve_picture(buffer.getvalue())
    try:
        run = gen(server.url, out_dir, "a gateway cat", "--size", "800x600")
    finally:
        server.close()
    [path] = run.paths
    assert recipe_of(path)["synthetic"] is True and "SYNTHETIC" in run.stderr
    assert Image.open(path).info["Description"].startswith("SYNTHETIC")


def test_show_prints_the_recipe_from_the_file_itself(emulator, out_dir, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((400, 300)))
    [path] = gen(emulator.root_url, out_dir, "the photo as a watercolor", "--image", str(photo)).paths
    moved = tmp_path / "elsewhere.png"
    path.rename(moved)  # the recipe travels with the file, wherever it goes
    shown = cli("show", str(moved))
    assert shown.code == 0 and shown.stderr == ""
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["file", str(moved)]
    assert "prompt     the photo as a watercolor" in lines and any(x.startswith("SYNTHETIC") for x in lines)
    assert any(line.startswith("input") and "photo.png (sha256" in line for line in lines)
    document = cli("show", str(moved), "--json").json
    assert document["path"] == str(moved) and document["recipe"] == recipe_of(moved)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(png_bytes((64, 64))), "carries no image-gen-local recipe"),
        (lambda p: p.write_text("hello"), "is not a PNG, JPEG, WebP or GIF picture"),
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "not a file"),
    ],
)
def test_show_says_in_one_line_why_a_file_has_no_recipe(tmp_path, make, words):
    path = tmp_path / "x.png"
    make(path)
    run = cli("show", str(path))
    assert run.code == 7 and run.stdout == "" and words in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    document = cli("show", str(path), "--json")
    assert document.code == 7 and document.json["errors"][0]["exit_code"] == 7


def test_show_makes_control_characters_in_a_hostile_recipe_visible(tmp_path):
    from image_gen_local.provenance import Made, label

    recipe = Made(
        "evil \x1b[2J \x9b2J \u2028 prompt",
        {},
        None,
        {},
        {},
        "m",
        "images",
        "http://h/v1",
        1,
        0,
        [],
        [],
        False,
        "t",
    )
    path = tmp_path / "evil.png"
    path.write_bytes(label(png_bytes((64, 64)), recipe.as_recipe()))
    run = cli("show", str(path))
    assert run.code == 0 and "\x1b" not in run.stdout and "\\x1b[2J" in run.stdout
    assert "\x9b" not in run.stdout and "\u2028" not in run.stdout
    # --json too: C1 controls (which JSON leaves raw) come out as escapes, and the document reads back
    document = cli("show", str(path), "--json")
    assert document.code == 0 and "\x9b" not in document.stdout and "\u2028" not in document.stdout
    assert "\\u009b" in document.stdout and document.json["recipe"]["prompt"].startswith(
        "evil \x1b[2J \x9b2J"
    )


def test_labelling_keeps_the_rule_that_nothing_is_overwritten_or_left_partial(emulator, out_dir):
    out_dir.mkdir()
    taken = out_dir / "taken.png"
    taken.write_bytes(b"mine")
    run = gen(emulator.root_url, out_dir, "a cat", "-o", str(taken))
    assert run.code == 2 and taken.read_bytes() == b"mine"
    gen(emulator.root_url, out_dir, "a cat", "-n", "3")
    assert not list(out_dir.glob(".image-gen-*"))  # no temporary file left
