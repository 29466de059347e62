"""Pictures in and out, with Pillow.

Inputs are checked and normalised before any request (orientation applied, metadata dropped, huge photos
downscaled) so a bad file fails fast and nothing private leaves the machine. Answers are fully decoded
before they are saved, so no broken file ever reaches the output folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image

from .containers import MIME, sniff
from .errors import InputImageError
from .geometry import MAX_RATIO, MIN_RATIO
from .upstream import SYNTHETIC_LABEL

# Formats we accept as input, by Pillow's name.
INPUT_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "MPO"}
# Longest side sent to the model; Gemini image models gain nothing from more and uploads stay small.
MAX_INPUT_SIDE = 3072
# Refuse inputs above this before decoding them (a 100 MP photo is fine, a decompression bomb is not). It is
# where Pillow itself refuses to open a picture (twice its warning threshold), so the message is accurate.
MAX_INPUT_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
# An input file's bytes are checked before they are read: a 200-megapixel photo is far smaller as JPEG or
# PNG; only an uncompressed BMP or TIFF that large is refused (exported compressed, it passes).
MAX_INPUT_BYTES = 256 * 1024 * 1024
# The largest picture the server makes is 6336x2688 (17 MP); anything far beyond is hostile or broken.
MAX_ANSWER_PIXELS = 64_000_000
# The smallest picture the server makes is 512 px on its short side (1K 21:9); 1x1 or 20000x1 is no picture.
MIN_ANSWER_SIDE = 32

_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
_ORIENTATION = 0x0112
_DESCRIPTION = 0x010E
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")


class PictureRefused(ValueError):
    """An answer we refuse to decode at all: it declares an absurd size."""


@dataclass(frozen=True)
class Upload:
    """A picture ready to upload."""

    source: Path
    data: bytes
    mime: str
    width: int
    height: int
    original_size: tuple[int, int]  # as the user sees it (EXIF orientation applied), before downscaling
    sha256: str = ""  # of the file as the user gave it, for the recipe of every picture made from it

    @property
    def filename(self) -> str:
        return f"{self.source.stem or 'image'}.{self.mime.split('/')[1].replace('jpeg', 'jpg')}"


@dataclass(frozen=True)
class Picture:
    """A verified picture from the server: its bytes and what they really are."""

    data: bytes
    format: str  # Pillow's name: PNG, JPEG, WEBP, GIF
    width: int
    height: int

    note: str = ""  # what we changed on the way in (an animation reduced to its first frame), to be said
    synthetic: bool = False  # labelled by the image-gen-local emulator: drawn by a program, not a model

    @property
    def mime(self) -> str:
        return MIME.get(self.format, f"image/{self.format.lower()}")

    @property
    def ext(self) -> str:
        return _EXT.get(self.format, self.format.lower())

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


def _is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _open(data: bytes) -> Image.Image:
    """Open without decoding, keeping Pillow's bomb warnings out of the user's terminal."""
    if _is_heif(data[:16]):
        from pillow_heif import register_heif_opener  # imported only when needed: it is slow to load

        register_heif_opener()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def _read_input(path: Path, shown: str) -> bytes:
    """The file's bytes, judged by what was opened, not by a look beforehand: a pipe swapped in for the
    picture between a check and the open would block the open forever (opened without blocking, then
    refused by fstat), and a file that grows while read is read no further than the limit."""
    too_large = InputImageError(
        f"--image {shown} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB",
        "export it as JPEG or PNG, or smaller",
    )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputImageError(f"--image {shown}: no such file", "check the path") from None
    except OSError as exc:
        raise InputImageError(
            f"--image {shown} cannot be read ({exc.strerror})", "check its permissions"
        ) from None
    status = os.fstat(fd)
    refusal = None
    if stat.S_ISDIR(status.st_mode):
        refusal = InputImageError(
            f"--image {shown} is a folder, not a picture", "give the picture's file path"
        )
    elif not stat.S_ISREG(status.st_mode):
        refusal = InputImageError(
            f"--image {shown} is not a regular file (a pipe or device?)", "give a picture file"
        )
    elif status.st_size > MAX_INPUT_BYTES:
        refusal = too_large
    if refusal is not None:
        os.close(fd)
        raise refusal
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_INPUT_BYTES + 1)  # never more: the file may grow while we read
        except OSError as exc:
            raise InputImageError(
                f"--image {shown} cannot be read ({exc.strerror})", "check its permissions"
            ) from None
    if len(data) > MAX_INPUT_BYTES:
        raise too_large
    if not data:
        raise InputImageError(
            f"--image {shown} is empty", "give a PNG, JPEG, WebP, GIF, BMP, TIFF or HEIC file"
        )
    return data


def load_input(path: Path) -> Upload:
    """Read, check and normalise one --image file; raise InputImageError with the reason."""
    shown = str(path)
    data = _read_input(path, shown)
    if data.lstrip()[:5].lower() in (b"<svg ", b"<?xml") or b"<svg" in data[:512].lower():
        raise InputImageError(
            f"--image {shown} is an SVG (vector) file",
            "export it as PNG first (e.g. with a browser or Inkscape)",
        )
    try:
        image = _open(data)
    except Image.DecompressionBombError:
        raise InputImageError(
            f"--image {shown} declares more than {MAX_INPUT_PIXELS // 1_000_000} megapixels",
            "use a smaller picture",
        ) from None
    except Exception:
        raise InputImageError(
            f"--image {shown} is not a picture we can read",
            "give a PNG, JPEG, WebP, GIF, BMP, TIFF or HEIC file",
        ) from None
    if image.format not in INPUT_FORMATS:
        raise InputImageError(
            f"--image {shown} is {image.format or 'an unknown format'}, which is not supported",
            "convert it to PNG or JPEG",
        )
    original = image.size
    if original[0] * original[1] > MAX_INPUT_PIXELS:
        raise InputImageError(
            f"--image {shown} is {original[0]}x{original[1]}, "
            f"above {MAX_INPUT_PIXELS // 1_000_000} megapixels",
            "use a smaller picture",
        )
    try:
        if image.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8):  # rotated a quarter turn
            original = (original[1], original[0])
        if image.format == "JPEG":
            image.draft(
                "RGB", (MAX_INPUT_SIDE, MAX_INPUT_SIDE)
            )  # decode big JPEGs at reduced scale: fast, small
        from PIL import ImageOps  # only input pictures need it; keeps start-up light for text-to-image

        image.load()
        image = ImageOps.exif_transpose(image)
    except Exception:
        raise InputImageError(
            f"--image {shown} is damaged or truncated", "re-export or re-download the picture"
        ) from None
    image = _normalise_mode(image)
    if max(image.size) > MAX_INPUT_SIDE:
        image.thumbnail((MAX_INPUT_SIDE, MAX_INPUT_SIDE), Image.Resampling.LANCZOS)
    # Re-encode always: this is what drops EXIF/GPS and other metadata.
    lossless = image.mode == "RGBA" or _source_lossless(data)
    out = io.BytesIO()
    if lossless:
        image.save(out, "PNG", optimize=False, compress_level=6)
        mime = "image/png"
    else:
        image.convert("RGB").save(out, "JPEG", quality=95)
        mime = "image/jpeg"
    digest = hashlib.sha256(data).hexdigest()
    return Upload(path, out.getvalue(), mime, image.width, image.height, original, digest)


def _source_lossless(data: bytes) -> bool:
    return not (data[:3] == b"\xff\xd8\xff" or _is_heif(data[:16]))


def _normalise_mode(image: Image.Image) -> Image.Image:
    """Reduce every mode to RGB or RGBA: the model wants plain colour pictures."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        return image if image.mode == "RGBA" else image.convert("RGBA")
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    elif image.mode == "F":
        image = image.point(lambda v: v * 255 if v <= 1 else v).convert("L")
    return image.convert("RGB")


def read_picture(data: bytes, max_pixels: int | None = None) -> Picture:
    """Check an answer's bytes are one complete picture, the right way up; raise ValueError saying what is
    wrong (PictureRefused for a declared size we refuse to decode at all).

    EXIF orientation is applied here, before any geometry sees the size, and an animation is reduced to its
    first frame (said in `note`); either way the picture is re-encoded, which also drops its metadata.
    """
    if not data:
        raise ValueError("the picture is empty")
    try:
        image = _open(data)
    except Image.DecompressionBombError:
        raise PictureRefused("the picture declares an absurd size (decompression bomb)") from None
    except Exception:
        raise ValueError(f"the server sent {len(data)} bytes that are not a picture") from None
    w, h = image.size
    if w * h > (max_pixels or MAX_ANSWER_PIXELS):
        raise PictureRefused(f"the picture declares {w}x{h} pixels (a decompression bomb); refused")
    _check_shape(w, h)
    fmt = image.format or "PNG"
    try:
        image.load()
        frames = getattr(image, "n_frames", 1)
        exif = image.getexif()
        orientation = exif.get(_ORIENTATION, 1)
    except Exception:
        raise ValueError(f"the {fmt} picture is truncated or corrupt") from None
    synthetic = _labelled_synthetic(image, exif)
    if orientation in range(2, 9) or frames > 1:
        from PIL import ImageOps

        note = f"the server sent an animation of {frames} frames; kept the first" if frames > 1 else ""
        upright = ImageOps.exif_transpose(image) or image
        _check_shape(upright.width, upright.height)
        fixed = encode(upright, fmt if fmt in _EXT else "PNG")
        return Picture(fixed.data, fixed.format, fixed.width, fixed.height, note, synthetic)
    return Picture(data, fmt, w, h, synthetic=synthetic)


def _labelled_synthetic(image: Image.Image, exif: Image.Exif) -> bool:
    """The emulator's own label, in a PNG comment, a JPEG comment or EXIF's image description."""
    texts = (image.info.get("Comment"), image.info.get("comment"), exif.get(_DESCRIPTION))
    return any(
        SYNTHETIC_LABEL in (t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t))
        for t in texts
        if t
    )


def _check_shape(w: int, h: int) -> None:
    if min(w, h) < MIN_ANSWER_SIDE or not MIN_RATIO <= Fraction(w, h) <= MAX_RATIO:
        raise ValueError(f"the server sent a {w}x{h} picture, which is not a usable picture")


def transform(
    picture: Picture, box: tuple[int, int, int, int] | None, resize: tuple[int, int] | None
) -> Picture:
    """Crop then resize, re-encoding in the picture's own format."""
    if box is None and resize is None:
        return picture
    image = _normalise_mode(_open(picture.data))
    if box is not None:
        image = image.crop(box)
    if resize is not None:
        image = image.resize(resize, Image.Resampling.LANCZOS)
    return encode(image, picture.format)


def encode(image: Image.Image, fmt: str) -> Picture:
    """Encode in `fmt` from any mode Pillow opens (CMYK, 16-bit, palette with transparency, LA, ...)."""
    image = _normalise_mode(image)  # RGB or RGBA, 16-bit scaled down rather than clipped to white
    out = io.BytesIO()
    if fmt == "JPEG":
        _flatten(image).save(out, "JPEG", quality=95)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=95)
    elif fmt == "GIF":
        image.save(out, "GIF")
    else:
        fmt = "PNG"
        image.save(out, "PNG", compress_level=6)
    return Picture(out.getvalue(), fmt, image.width, image.height)


def _flatten(image: Image.Image) -> Image.Image:
    """Transparency onto white for formats without it (what a viewer shows), not onto black."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGB", image.size, "white")
    background.paste(image, mask=image.getchannel("A"))
    return background


def convert(picture: Picture, fmt: str) -> Picture:
    """The same picture in another format (for `-o name.jpg` when the server sent PNG)."""
    if fmt == picture.format:
        return picture
    return encode(_open(picture.data), fmt)


FORMAT_BY_EXT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}


def preview(path: Path, max_side: int = 512, quality: int = 80) -> bytes:
    """A small JPEG of a saved picture (at most `max_side` px on its long side), for a model to look at
    what was made without being sent a 4K file."""
    with Image.open(path) as image:
        image.draft("RGB", (max_side, max_side))  # a large JPEG decodes at reduced scale
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        _flatten(_normalise_mode(image)).save(out, "JPEG", quality=quality)
    return out.getvalue()


def pixel_size(path: Path) -> tuple[int, int, str] | None:
    """Width, height and MIME type read from a picture file's header; None if it is not one we show."""
    try:
        with Image.open(path) as image:
            mime = MIME.get(image.format or "")
            return (image.width, image.height, mime) if mime else None
    except Exception:
        return None


def labelable(picture: Picture) -> Picture:
    """A picture in a format that can carry its recipe: PNG, JPEG, WebP and GIF as they are, anything else
    (a server sending BMP or TIFF) as PNG."""
    return picture if sniff(picture.data) else convert(picture, "PNG")
