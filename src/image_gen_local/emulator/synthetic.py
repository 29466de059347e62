"""The emulator's pictures: synthetic, loudly labelled, at the sizes the real server returns.

Each shows the prompt as the server would send it upstream, the parameters it read and thumbnails of the
inputs it received, so a user can see at a glance what their client really asked for. The marking is
everywhere, not only in the banners: the word SYNTHETIC runs in diagonal lines over the whole picture, in
the banners' red, dense enough that any crop the client makes (down to a 1:10 strip) and any resize keeps
some of it (`marked_share` measures it). Text in any script is legible (lettering.py).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence

from PIL import Image, ImageChops, ImageDraw, ImageOps, PngImagePlugin

from ..upstream import SYNTHETIC_LABEL
from .intake import ReceivedImage
from .lettering import EM_DASH, Lettering, font_at, metrics
from .plans import ImageJob
from .rules import format_mime

BANNER = f"SYNTHETIC {EM_DASH} image-gen-local emulator, no AI model was used"
PNG_SOFTWARE = "image-gen-local emulator"
PNG_COMMENT = SYNTHETIC_LABEL

Color = tuple[int, int, int]
DARKEN = tuple(v * 3 // 10 for v in range(256)) * 3
BANNER_BG = (200, 16, 32)
BANNER_FG = (255, 255, 255)
TITLE_FG = (255, 214, 0)
PARAM_FG = (200, 205, 215)
PROMPT_FG = (255, 255, 255)
WARN_FG = (255, 90, 90)
THUMB_SIDE = 640
PROMPT_CAPTION = "prompt as the server would send it upstream:"
PANEL_TITLE = f"SYNTHETIC IMAGE {EM_DASH} not made by an AI model"
MARK = "SYNTHETIC"
MARK_RGB = BANNER_BG  # the marks are in the banners' red, which no background colour comes near
MARK_ANGLE = 30  # degrees
MARK_SIZE = 0.03  # of the short side: the letters' size
MARK_SPACING = 0.14  # of the short side: between two lines of marks
BACKGROUND_MIN = 80  # every channel of the background is at least this: far from MARK_RGB
PROMPT_SHOWN = 6000  # characters of a prompt laid out at most (more never fits, even at 4K)


def _line_height(size: float) -> int:
    return round(font_at("", size).getbbox("Ag")[3] * 1.3)


def _longest_prefix(word: str, letters: Lettering, size: float, width: float) -> int:
    """Length of the longest prefix of `word` that fits `width` (at least 1), by bisection."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if letters.length(word[:middle], size) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _wrap(text: str, letters: Lettering, size: float, width: float) -> list[str]:
    """Greedy word wrap by measured width; words longer than a line are cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if letters.length(candidate, size) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while len(word) > 1 and letters.length(word, size) > width:
                cut = _longest_prefix(word, letters, size, width)
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    return lines


def _background(
    size: tuple[int, int], prompt: str, index: int, panel: tuple[int, int, int, int]
) -> Image.Image:
    """A diagonal two-colour gradient seeded by the prompt, darker under the text panel.

    Drawn at 256 px and scaled with NEAREST, which is invisible on a 256-level gradient and keeps 4K fast.
    """
    seed = hashlib.sha256(prompt.encode("utf-8")).digest()
    spread = 220 - BACKGROUND_MIN
    start = [BACKGROUND_MIN + b * spread // 255 for b in seed[0:3]]
    end = [BACKGROUND_MIN + b * spread // 255 for b in seed[3:6]]
    vertical = Image.linear_gradient("L")
    mix = ImageChops.add(vertical, vertical.rotate(90), scale=2.0)
    if index % 2:
        mix = ImageOps.mirror(mix)
    bands = [mix.point([a + (b - a) * v // 255 for v in range(256)]) for a, b in zip(start, end, strict=True)]
    small = Image.merge("RGB", bands)
    img = small.resize(size, Image.Resampling.NEAREST)
    sx, sy = small.width / size[0], small.height / size[1]
    box = (panel[0] * sx, panel[1] * sy, panel[2] * sx, panel[3] * sy)
    dark = small.point(list(DARKEN)).resize(
        (panel[2] - panel[0], panel[3] - panel[1]), Image.Resampling.NEAREST, box=box
    )
    img.paste(dark, panel[:2])
    return img


def _marks(img: Image.Image, unit: int) -> None:
    """SYNTHETIC in diagonal lines over the whole picture, words end to end, lines `MARK_SPACING` apart.

    One word is drawn once, turned, and pasted along each line, so a 4K picture costs a few dozen pastes.
    """
    size = max(9, round(unit * MARK_SIZE))
    font = font_at("", size)
    pitch = font.getlength(MARK) + size * 1.6
    ascent, descent = metrics(font)
    word = Image.new("L", (math.ceil(pitch), ascent + descent + 2))
    ImageDraw.Draw(word).text((0, 1), MARK, font=font, fill=255)
    turned = word.rotate(MARK_ANGLE, expand=True, resample=Image.Resampling.BICUBIC)
    paint = Image.new("RGB", turned.size, MARK_RGB)
    angle = math.radians(MARK_ANGLE)
    along = (pitch * math.cos(angle), -pitch * math.sin(angle))
    across = (unit * MARK_SPACING * math.sin(angle), unit * MARK_SPACING * math.cos(angle))
    width, height = img.size
    lines = math.ceil((width + height) / (unit * MARK_SPACING)) + 2
    words = math.ceil((width + height) / pitch) + 2
    for line in range(-lines, lines):
        shift = 0.5 * (line % 2)
        for step in range(-words, words):
            x = line * across[0] + (step + shift) * along[0]
            y = line * across[1] + (step + shift) * along[1]
            if -turned.width < x < width and -turned.height < y < height:
                img.paste(paint, (round(x), round(y)), turned)


def marked_share(image: Image.Image, tolerance: int = 48) -> float:
    """The share of pixels in the marking's red (banners and marks): how much of the marking a picture
    (or any crop or resize of it) still carries. A photo or a plain picture gives ~0."""
    rgb = image.convert("RGB")
    bands = [
        band.point([255 if abs(v - c) <= tolerance else 0 for v in range(256)])
        for band, c in zip(rgb.split(), MARK_RGB, strict=True)
    ]
    near = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
    histogram = near.histogram()
    return histogram[255] / max(1, rgb.width * rgb.height)


def _banner(draw: ImageDraw.ImageDraw, letters: Lettering, box: tuple[int, int, int, int], text: str) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=BANNER_BG)
    size = letters.fitted(text, (y1 - y0) * 0.55, (x1 - x0) * 0.94)
    start = (x0 + x1 - letters.length(text, size)) / 2
    letters.draw(draw, (start, (y0 + y1) / 2), text, size, BANNER_FG, anchor="lm")


def decode_thumbnail(data: bytes, side: int = THUMB_SIDE) -> Image.Image | None:
    """A small RGBA copy of an input image, or None when Pillow cannot decode it."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (side, side))
            im.thumbnail((side, side))
            thumb: Image.Image = im.convert("RGBA")
            return thumb
    except Exception:
        return None


def _input_slots(box: tuple[int, int, int, int], count: int, unit: int) -> tuple[list[int], int, int]:
    """Where the input thumbnails go: the left edge of each slot, its width, and the pictures' height."""
    x0, y0, x1, y1 = box
    gap = max(4, unit // 80)
    image_height = max(8, y1 - y0 - 3 * _line_height(unit * 0.022))
    slot = min(image_height * 1.5, (x1 - x0 - gap * (count - 1)) / count)
    return [round(x0 + i * (slot + gap)) for i in range(count)], round(slot), image_height


def _paste_inputs(
    img: Image.Image, box: tuple[int, int, int, int], thumbs: Sequence[Image.Image], unit: int
) -> None:
    """Thumbnails of the inputs, pasted before the marks so the marks cover them too."""
    lefts, slot, image_height = _input_slots(box, len(thumbs), unit)
    for left, thumb in zip(lefts, thumbs, strict=True):
        fitted = ImageOps.contain(thumb, (max(1, slot), image_height))
        img.paste(fitted, (left + (slot - fitted.width) // 2, box[1] + image_height - fitted.height), fitted)


def _label_inputs(
    draw: ImageDraw.ImageDraw,
    letters: Lettering,
    box: tuple[int, int, int, int],
    inputs: Sequence[ReceivedImage],
    unit: int,
) -> None:
    """Frame and label each input with its field name and declared MIME, since the server trusts it."""
    lefts, slot, image_height = _input_slots(box, len(inputs), unit)
    label_size = unit * 0.022
    label_line = _line_height(label_size)
    y0 = box[1]
    for left, item in zip(lefts, inputs, strict=True):
        draw.rectangle(
            (left, y0, left + slot, y0 + image_height), outline=PARAM_FG, width=max(1, unit // 400)
        )
        y = y0 + image_height + 2
        label = f"{item.label} ({item.declared_mime})"
        letters.draw(draw, (left, y), label, letters.fitted(label, label_size, slot), PROMPT_FG)
        if item.mismatch:
            note = ("declared MIME does not", f"match bytes ({item.sniffed})")
            size = letters.fitted(max(note, key=len), label_size, slot)
            for row, text in enumerate(note, start=1):
                letters.draw(draw, (left, y + row * label_line), text, size, WARN_FG)


def render_picture(
    job: ImageJob, index: int, thumbs: Sequence[Image.Image] = (), letters: Lettering | None = None
) -> Image.Image:
    """The synthetic answer: marks all over, banners, prompt, parameters and input thumbnails."""
    letters = letters if letters is not None else Lettering()
    w, h = job.geometry.pixels
    unit = min(w, h)
    top, bottom = max(28, round(unit * 0.09)), max(20, round(unit * 0.055))
    margin = max(6, round(unit * 0.025))
    panel = (margin, top + margin, w - margin, h - bottom - margin)
    img = _background((w, h), job.prompt, index, panel)
    x, y = panel[0] + margin, panel[1] + margin
    width = panel[2] - panel[0] - 2 * margin
    limit = panel[3] - margin
    title_size = letters.fitted(PANEL_TITLE, unit * 0.06, width)
    params = (
        f"route: {job.route}   model: {job.model}",
        f"aspect ratio {job.geometry.ratio}   tier {job.geometry.tier}   {w}x{h} px",
        f"picture {index + 1}/{job.count}   image-gen-local offline emulator of Antigravity Tools",
    )
    prompt_top = y + _line_height(title_size) + len(params) * _line_height(unit * 0.03) + round(unit * 0.02)
    inputs = (x, limit - round((limit - prompt_top) * 0.45), x + width, limit)
    if job.inputs:
        _paste_inputs(img, inputs, thumbs, unit)
    _marks(img, unit)  # over the pictures, under the text, which stays legible on top of them
    draw = ImageDraw.Draw(img)
    _banner(draw, letters, (0, 0, w, top), BANNER)
    _banner(draw, letters, (0, h - bottom, w, h), BANNER)
    letters.draw(draw, (x, y), PANEL_TITLE, title_size, TITLE_FG)
    y += _line_height(title_size)
    for line in params:
        letters.draw(draw, (x, y), line, letters.fitted(line, unit * 0.03, width), PARAM_FG)
        y += _line_height(unit * 0.03)
    if job.inputs:
        _label_inputs(draw, letters, inputs, job.inputs, unit)
        limit = inputs[1] - margin
    y = prompt_top
    _draw_prompt(draw, letters, job.prompt[:PROMPT_SHOWN], (x, y, x + width, limit), unit)
    return img


def _draw_prompt(
    draw: ImageDraw.ImageDraw, letters: Lettering, prompt: str, box: tuple[int, int, int, int], unit: int
) -> None:
    """The caption, then the prompt wrapped to the box; a note when some of it is drawn transliterated."""
    x, y, right, limit = box
    width = right - x
    foreign = letters.foreign(prompt)
    caption = PROMPT_CAPTION
    if foreign:
        caption += f" ({foreign} characters with no font here are transliterated, in blue)"
    caption_size = letters.fitted(caption, unit * 0.026, width)
    letters.draw(draw, (x, y), caption, caption_size, PARAM_FG)
    y += _line_height(caption_size)
    size = unit * 0.04
    line_height = _line_height(size)
    lines = _wrap(prompt or "(empty prompt)", letters, size, width)
    room = max(0, (limit - y) // line_height)
    if len(lines) > room:
        lines = lines[:room]
        if lines:
            lines[-1] = lines[-1][: max(0, len(lines[-1]) - 4)] + " ..."
    for line in lines:
        letters.draw(draw, (x, y), line, size, PROMPT_FG)
        y += line_height


def encode_picture(img: Image.Image, image_format: str, orientation: int = 1) -> tuple[bytes, str]:
    """Encode fast (PNG level 1) and label the file itself as synthetic, in PNG text chunks or EXIF; an
    `orientation` other than 1 is written as EXIF orientation (the `rotated` fault)."""
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0131] = PNG_SOFTWARE  # Software
    exif[0x010E] = PNG_COMMENT  # ImageDescription
    if orientation != 1:
        exif[0x0112] = orientation
    if image_format == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", PNG_SOFTWARE)
        info.add_text("Comment", PNG_COMMENT)
        extra = {"exif": exif.tobytes()} if orientation != 1 else {}
        img.save(buffer, "PNG", pnginfo=info, compress_level=1, **extra)
    elif image_format == "jpeg":
        img.save(buffer, "JPEG", quality=90, exif=exif.tobytes(), comment=PNG_COMMENT)
    else:
        img.save(buffer, "WEBP", quality=90, method=0, exif=exif.tobytes())
    return buffer.getvalue(), format_mime(image_format)


def render_job(job: ImageJob, image_format: str) -> list[tuple[bytes, str]] | None:
    """Every picture of a job, encoded; None when an input image cannot be decoded."""
    thumbs = [decode_thumbnail(item.data) for item in job.inputs]
    decoded = [thumb for thumb in thumbs if thumb is not None]
    if len(decoded) != len(thumbs):
        return None
    letters = Lettering()
    return [encode_picture(render_picture(job, i, decoded, letters), image_format) for i in range(job.count)]
