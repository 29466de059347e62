"""Text metadata written into PNG, JPEG, WebP and GIF bytes: the picture is untouched, the texts are found
again by us and by Pillow, earlier copies are replaced, and broken files are refused without a crash."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from image_gen_local import containers
from image_gen_local.containers import Labels

XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
    b"a cat \xe7\x8c\xab</rdf:li></rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="r"?>'
)
LABELS = Labels({"image-gen-local": '{"prompt": "a cat 猫"}', "Description": "a cat 猫"}, XMP, ("made here",))


def encoded(fmt: str, mode: str = "RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (80, 60), (10, 20, 30, 100) if mode == "RGBA" else "teal").save(out, fmt, **save)
    return out.getvalue()


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.mode, image.size, image.tobytes()


CASES = [
    ("PNG", "RGB", {}),
    ("PNG", "RGBA", {}),
    ("JPEG", "RGB", {}),
    ("WEBP", "RGB", {}),
    ("WEBP", "RGBA", {"lossless": True}),
    ("WEBP", "RGBA", {}),
    ("GIF", "RGB", {}),
]


@pytest.mark.parametrize(("fmt", "mode", "save"), CASES)
def test_labels_are_found_again_and_the_pixels_are_untouched(fmt, mode, save):
    data = encoded(fmt, mode, **save)
    labelled = containers.embed(data, LABELS)
    assert pixels(labelled) == pixels(data)
    found = containers.read(labelled)
    assert found is not None and found.format == fmt
    if fmt == "PNG":
        assert found.texts["image-gen-local"] == '{"prompt": "a cat 猫"}' and found.xmp == XMP
    elif fmt == "GIF":
        assert found.comments == ("made here",)
    else:
        assert found.xmp == XMP
    if fmt != "GIF":
        assert "a cat 猫" in str(Image.open(io.BytesIO(labelled)).getxmp())  # Pillow, with defusedxml


@pytest.mark.parametrize(("fmt", "mode", "save"), CASES)
def test_labelling_twice_replaces_rather_than_doubles(fmt, mode, save):
    once = containers.embed(encoded(fmt, mode, **save), LABELS)
    twice = containers.embed(once, LABELS)
    assert twice == once


def test_a_jpeg_keeps_its_jfif_and_exif_first():
    exif = Image.Exif()
    exif[0x010E] = "from the camera"
    data = encoded("JPEG", exif=exif.tobytes())
    labelled = containers.embed(data, LABELS)
    assert labelled.index(b"Exif\x00\x00") < labelled.index(containers.JPEG_XMP_HEADER)
    assert Image.open(io.BytesIO(labelled)).getexif()[0x010E] == "from the camera"


def test_a_simple_webp_becomes_extended_and_keeps_its_transparency():
    data = encoded("WEBP", "RGBA", lossless=True)
    assert data[12:16] == b"VP8L"
    labelled = containers.embed(data, LABELS)
    assert labelled[12:16] == b"VP8X" and labelled[20] & 0x14 == 0x14  # XMP and alpha flags
    assert int.from_bytes(labelled[4:8], "little") == len(labelled) - 8
    assert Image.open(io.BytesIO(labelled)).getpixel((1, 1)) == (10, 20, 30, 100)


def test_a_gif87a_is_upgraded_so_it_may_hold_a_comment():
    data = b"GIF87a" + encoded("GIF")[6:]
    labelled = containers.embed(data, LABELS)
    assert labelled.startswith(b"GIF89a") and Image.open(io.BytesIO(labelled)).info["comment"] == b"made here"


def test_a_long_comment_is_split_into_gif_sub_blocks():
    text = "x" * 1000
    labelled = containers.embed(encoded("GIF"), Labels({}, b"", (text,)))
    assert containers.read(labelled).comments == (text,)


def test_a_compressed_text_chunk_is_read_but_never_inflated_beyond_the_cap():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("note", "y" * 100, zip=True)
    info.add_text("bomb", "z" * (containers.MAX_TEXT + 10), zip=True)
    out = io.BytesIO()
    Image.new("RGB", (40, 40)).save(out, "PNG", pnginfo=info)
    found = containers.read(out.getvalue())
    assert found.texts["note"] == "y" * 100 and len(found.texts["bomb"]) == containers.MAX_TEXT


@pytest.mark.parametrize("data", [b"", b"plain text", b"BM" + b"\x00" * 60])
def test_bytes_that_are_no_format_we_label_are_refused(data):
    with pytest.raises(ValueError):
        containers.embed(data, LABELS)
    assert containers.read(data) is None


@pytest.mark.parametrize(("fmt", "cut"), [("PNG", 40), ("JPEG", 30), ("WEBP", 30), ("GIF", 20)])
def test_a_truncated_file_is_refused_for_labelling_and_reads_as_holding_nothing(fmt, cut):
    data = containers.embed(encoded(fmt), LABELS)[:cut]
    with pytest.raises(ValueError):
        containers.embed(data, LABELS)
    found = containers.read(data)
    assert found is not None and found.xmp is None and not found.texts
