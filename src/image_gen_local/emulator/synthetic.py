"""The emulator's pictures: synthetic, loudly labelled, at the sizes the real server returns.

Each shows the prompt as the server would send it upstream, the parameters it read and thumbnails of the
inputs it received, so a user can see at a glance what their client really asked for.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, PngImagePlugin

from ..upstream import SYNTHETIC_LABEL
from .rules import ImageJob, ReceivedImage, format_mime

BANNER = "SYNTHETIC — image-gen-local emulator, no AI model was used"
PNG_SOFTWARE = "image-gen-local emulator"
PNG_COMMENT = SYNTHETIC_LABEL

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
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
PANEL_TITLE = "SYNTHETIC IMAGE — not made by an AI model"
EM_DASH = "—"
WATERMARK = "SYNTHETIC"
WATERMARK_FG = (78, 80, 92)


def _font(size: float) -> Font:
    return ImageFont.load_default(size=max(8, round(size)))


def _text_length(text: str, font: Font) -> float:
    parts = text.split(EM_DASH)
    return sum(font.getlength(part) for part in parts) + (len(parts) - 1) * font.getlength("M")


def _draw_text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: Font, fill: Color, anchor: str = "la"
) -> None:
    """Draw text with the default font, which has no em dash glyph: draw that one as a bar."""
    x, y = xy
    dash = font.getlength("M")
    _, top, _, bottom = font.getbbox("x", anchor=anchor)
    for i, part in enumerate(text.split(EM_DASH)):
        if i:
            middle = y + (top + bottom) / 2
            draw.line(
                (x + dash * 0.15, middle, x + dash * 0.85, middle), fill=fill, width=max(1, round(dash / 12))
            )
            x += dash
        draw.text((x, y), part, font=font, fill=fill, anchor=anchor)
        x += font.getlength(part)


def _fitted_font(text: str, size: float, width: float) -> Font:
    """The default font at `size`, shrunk so `text` fits in `width`."""
    font = _font(size)
    length = _text_length(text, font)
    return _font(size * width / length) if length > width else font


def _line_height(font: Font) -> int:
    return round(font.getbbox("Ag")[3] * 1.3)


def _longest_prefix(word: str, font: Font, width: float) -> int:
    """Length of the longest prefix of `word` that fits `width` (at least 1), by bisection."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if _text_length(word[:middle], font) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _wrap(text: str, font: Font, width: float) -> list[str]:
    """Greedy word wrap by measured width; words longer than a line are cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if _text_length(candidate, font) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while len(word) > 1 and _text_length(word, font) > width:
                cut = _longest_prefix(word, font, width)
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
    start = [40 + b * 180 // 255 for b in seed[0:3]]
    end = [40 + b * 180 // 255 for b in seed[3:6]]
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


def _banner(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=BANNER_BG)
    font = _fitted_font(text, (y1 - y0) * 0.55, (x1 - x0) * 0.94)
    start = (x0 + x1 - _text_length(text, font)) / 2
    _draw_text(draw, (start, (y0 + y1) / 2), text, font, BANNER_FG, anchor="lm")


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


def _draw_inputs(
    img: Image.Image,
    box: tuple[int, int, int, int],
    inputs: Sequence[ReceivedImage],
    thumbs: Sequence[Image.Image],
    unit: int,
) -> None:
    """Thumbnails of the inputs, labelled with field name and declared MIME, since the server trusts it."""
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    gap = max(4, unit // 80)
    label_size = unit * 0.022
    label_line = _line_height(_font(label_size))
    image_height = max(8, y1 - y0 - 3 * label_line)
    slot = min(image_height * 1.5, (x1 - x0 - gap * (len(inputs) - 1)) / len(inputs))
    for i, (item, thumb) in enumerate(zip(inputs, thumbs, strict=True)):
        left = round(x0 + i * (slot + gap))
        fitted = ImageOps.contain(thumb, (max(1, round(slot)), image_height))
        px = left + (round(slot) - fitted.width) // 2
        img.paste(fitted, (px, y0 + image_height - fitted.height), fitted)
        frame = (left, y0, left + round(slot), y0 + image_height)
        draw.rectangle(frame, outline=PARAM_FG, width=max(1, unit // 400))
        y = y0 + image_height + 2
        label = f"{item.label} ({item.declared_mime})"
        _draw_text(draw, (left, y), label, _fitted_font(label, label_size, slot), PROMPT_FG)
        if item.mismatch:
            note = ("declared MIME does not", f"match bytes ({item.sniffed})")
            font = _fitted_font(max(note, key=len), label_size, slot)
            for row, text in enumerate(note, start=1):
                _draw_text(draw, (left, y + row * label_line), text, font, WARN_FG)


def render_picture(job: ImageJob, index: int, thumbs: Sequence[Image.Image] = ()) -> Image.Image:
    """The synthetic answer: banners that survive a centre-crop, prompt, parameters and input thumbnails."""
    w, h = job.geometry.pixels
    unit = min(w, h)
    top, bottom = max(28, round(unit * 0.09)), max(20, round(unit * 0.055))
    margin = max(6, round(unit * 0.025))
    panel = (margin, top + margin, w - margin, h - bottom - margin)
    img = _background((w, h), job.prompt, index, panel)
    draw = ImageDraw.Draw(img)
    _banner(draw, (0, 0, w, top), BANNER)
    _banner(draw, (0, h - bottom, w, h), BANNER)
    watermark = _fitted_font(WATERMARK, unit * 0.16, (panel[2] - panel[0]) * 0.9)
    centre = ((panel[0] + panel[2]) / 2, (panel[1] + panel[3]) / 2)
    draw.text(centre, WATERMARK, font=watermark, fill=WATERMARK_FG, anchor="mm")  # survives a centre-crop
    x, y = panel[0] + margin, panel[1] + margin
    width = panel[2] - panel[0] - 2 * margin
    limit = panel[3] - margin

    title_font = _fitted_font(PANEL_TITLE, unit * 0.06, width)
    _draw_text(draw, (x, y), PANEL_TITLE, title_font, TITLE_FG)
    y += _line_height(title_font)
    params = (
        f"route: {job.route}   model: {job.model}",
        f"aspect ratio {job.geometry.ratio}   tier {job.geometry.tier}   {w}x{h} px",
        f"picture {index + 1}/{job.count}   image-gen-local offline emulator of Antigravity Tools",
    )
    for line in params:
        _draw_text(draw, (x, y), line, _fitted_font(line, unit * 0.03, width), PARAM_FG)
        y += _line_height(_font(unit * 0.03))
    y += round(unit * 0.02)

    if job.inputs:
        thumbs_top = limit - round((limit - y) * 0.45)
        _draw_inputs(img, (x, thumbs_top, x + width, limit), job.inputs, thumbs, unit)
        limit = thumbs_top - margin

    caption_font = _fitted_font(PROMPT_CAPTION, unit * 0.026, width)
    _draw_text(draw, (x, y), PROMPT_CAPTION, caption_font, PARAM_FG)
    y += _line_height(caption_font)
    prompt_font = _font(unit * 0.04)
    line_height = _line_height(prompt_font)
    lines = _wrap(job.prompt or "(empty prompt)", prompt_font, width)
    room = max(0, (limit - y) // line_height)
    if len(lines) > room:
        lines = lines[:room]
        if lines:
            lines[-1] = lines[-1][: max(0, len(lines[-1]) - 4)] + " ..."
    for line in lines:
        _draw_text(draw, (x, y), line, prompt_font, PROMPT_FG)
        y += line_height
    return img


def encode_picture(img: Image.Image, image_format: str) -> tuple[bytes, str]:
    """Encode fast (PNG level 1) and label the file itself as synthetic, in PNG text chunks or EXIF."""
    buffer = io.BytesIO()
    if image_format == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", PNG_SOFTWARE)
        info.add_text("Comment", PNG_COMMENT)
        img.save(buffer, "PNG", pnginfo=info, compress_level=1)
    else:
        exif = Image.Exif()
        exif[0x0131] = PNG_SOFTWARE  # Software
        exif[0x010E] = PNG_COMMENT  # ImageDescription
        if image_format == "jpeg":
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
    return [encode_picture(render_picture(job, i, decoded), image_format) for i in range(job.count)]
