import io
import zlib

import pytest
from PIL import Image

from helpers import png_bytes, write_picture
from image_gen_local.errors import InputImageError
from image_gen_local.images import MAX_INPUT_SIDE, convert, load_input, read_picture, transform


def test_load_png_keeps_lossless(tmp_path):
    loaded = load_input(write_picture(tmp_path / "a.png", (300, 200)))
    assert loaded.mime == "image/png" and (loaded.width, loaded.height) == (300, 200)


def test_load_jpeg_strips_metadata(tmp_path):
    image = Image.new("RGB", (300, 200), "red")
    exif = image.getexif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {2: (1.0, 2.0, 3.0)}
    path = tmp_path / "a.jpg"
    image.save(path, "JPEG", exif=exif)
    loaded = load_input(path)
    assert loaded.mime == "image/jpeg"
    sent = Image.open(io.BytesIO(loaded.data))
    assert not sent.getexif() and b"SecretCam" not in loaded.data


def test_huge_input_is_downscaled_not_refused(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (10000, 10000), "green").save(path, "JPEG", quality=50)  # 100 megapixels
    loaded = load_input(path)
    assert max(loaded.width, loaded.height) <= MAX_INPUT_SIDE
    assert loaded.original_size == (10000, 10000)


def test_rgba_and_palette_inputs(tmp_path):
    Image.new("RGBA", (64, 64), (1, 2, 3, 100)).save(tmp_path / "a.png")
    assert load_input(tmp_path / "a.png").mime == "image/png"
    Image.new("P", (64, 64)).save(tmp_path / "b.gif")
    assert load_input(tmp_path / "b.gif").mime == "image/png"
    Image.new("RGB", (64, 64)).save(tmp_path / "c.bmp")
    assert load_input(tmp_path / "c.bmp").mime == "image/png"
    Image.new("RGB", (64, 64)).save(tmp_path / "d.tiff")
    assert load_input(tmp_path / "d.tiff").mime == "image/png"


def test_heic_input(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "phone.heic"
    Image.new("RGB", (320, 240), "purple").save(path, "HEIF")
    loaded = load_input(path)
    assert loaded.mime == "image/jpeg" and loaded.original_size == (320, 240)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.png", None, "no such file"),
        ("empty.png", b"", "is empty"),
        ("text.png", b"hello, I am text", "not a picture"),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        ("cut.png", png_bytes((500, 500))[:300], "damaged or truncated"),
    ],
)
def test_bad_inputs(tmp_path, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputImageError, match=words):
        load_input(path)


def test_directory_input(tmp_path):
    with pytest.raises(InputImageError, match="folder"):
        load_input(tmp_path)


def test_read_picture_checks_answers():
    assert read_picture(png_bytes((100, 200))).size == (100, 200)
    for bad in (b"", b"not an image", png_bytes((100, 100))[:-40]):
        with pytest.raises(ValueError):
            read_picture(bad)


def test_read_picture_refuses_declared_bombs():
    header = bytearray(png_bytes((1, 1)))
    header[16:24] = (50000).to_bytes(4, "big") + (50000).to_bytes(4, "big")  # IHDR width/height
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")  # keep the chunk valid
    with pytest.raises(ValueError, match=r"decompression bomb|absurd|beyond"):
        read_picture(bytes(header))


def test_transform_and_convert_keep_format():
    picture = read_picture(png_bytes((1000, 500)))
    cropped = transform(picture, (250, 0, 750, 500), (100, 100))
    assert cropped.format == "PNG" and cropped.size == (100, 100)
    assert convert(cropped, "JPEG").format == "JPEG"


def test_inputs_above_pillows_limit_say_the_real_limit(tmp_path):
    header = bytearray(png_bytes((1, 1)))
    header[16:24] = (14_000).to_bytes(4, "big") + (13_600).to_bytes(4, "big")  # 190 megapixels
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(header))
    with pytest.raises(InputImageError, match="more than 178 megapixels"):
        load_input(path)
