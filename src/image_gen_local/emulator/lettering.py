"""Text in any script on the emulator's pictures: real glyphs where a font here has them, a legible
transliteration where none does, never empty boxes.

Pillow's built-in font has ASCII only (not even `é`), so a prompt such as `猫咪在窗台上` used to come out
as a row of boxes. Each character is now drawn with the first font that has it: Pillow's own, then fonts
already on this machine at well-known paths (DejaVu, Noto, Noto CJK, WenQuanYi on Linux; Arial Unicode,
Hiragino, Apple SD Gothic on macOS; Segoe UI, YaHei, Meiryo, Malgun on Windows). Characters no font here
has are transliterated with `anyascii` (`猫咪` → `Mao Mi`, `ねこ` → `neko`, `🐱` → `:cat:`) and drawn in
another colour, so a reader sees at once that they stand in for the prompt's own script; what has no
transliteration is shown as its code point (`U+E000`). No font is shipped: the only PyPI packages carrying
a CJK font are ~28 MB wheels (~33 MB installed), for a picture nobody is meant to keep.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Color = tuple[int, int, int]
BUILT_IN = ""  # the "path" of Pillow's own font
BAR = -1  # the font index of a run drawn as a bar: the em dash, which the built-in font lacks
EM_DASH = "—"
FOREIGN_FG = (120, 220, 255)  # transliterated text
PROBE_SIZE = 32
INVISIBLE = {"Mn", "Me", "Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}  # no code point shown for these
NO_GLYPH = "\U0010fffd"  # a private-use character no font draws: what a missing glyph looks like
FONT_FILES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansHebrew-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/System/Library/Fonts/AppleSDGothicNeo.ttc",
    "C:/Windows/Fonts/segoeui.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/meiryo.ttc",
    "C:/Windows/Fonts/malgun.ttf",
)


def font_at(path: str, size: float) -> Font:
    pixels = max(8, round(size))
    return ImageFont.load_default(size=pixels) if path == BUILT_IN else ImageFont.truetype(path, pixels)


def metrics(font: Font) -> tuple[int, int]:
    """Ascent and descent in pixels (a font without FreeType's metrics: from the box of "Ag")."""
    if isinstance(font, ImageFont.FreeTypeFont):
        return font.getmetrics()
    _, top, _, bottom = font.getbbox("Ag")
    return round(-top), round(bottom)


def find_fonts(candidates: Sequence[str] = FONT_FILES) -> tuple[str, ...]:
    """Pillow's font, then those of the candidate font files that are here and open."""
    found = [BUILT_IN]
    for path in candidates:
        if os.path.isfile(path):
            try:
                font_at(path, PROBE_SIZE)
            except OSError:
                continue
            found.append(path)
    return tuple(found)


def glyph(font: Font, char: str) -> bytes:
    """The pixels of one character at the probe size: equal to NO_GLYPH's when the font lacks it."""
    canvas = Image.new("L", (PROBE_SIZE * 2, PROBE_SIZE * 2))
    ImageDraw.Draw(canvas).text((PROBE_SIZE // 2, PROBE_SIZE // 2), char, font=font, fill=255)
    return canvas.tobytes()


def _ideograph(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK UNIFIED")


def _script(char: str) -> str:
    """A rough script name, enough to tell where a run of kana or ideographs ends (`HIRAGANA`, `CJK`)."""
    return unicodedata.name(char, "").split(" ", 1)[0]


def _apart(before: str, char: str) -> bool:
    """Whether the transliterations of two neighbours need a space: ideographs are words of their own, and
    a change of script (日本|の|アニメ) is the nearest thing to a word boundary text without spaces has."""
    if _ideograph(before) and _ideograph(char):
        return True
    letters = unicodedata.category(before)[0] == "L" and unicodedata.category(char)[0] == "L"
    return letters and _script(before) != _script(char)


def transliterate(text: str) -> str:
    """ASCII that reads like `text` (anyascii; `日本のアニメ` → `Ri Ben no anime`), else code points
    (`U+E000`); what is invisible anyway (marks, controls) is dropped."""
    to_ascii: Callable[[str], str] | None
    try:
        from anyascii import anyascii as to_ascii
    except ImportError:  # the skill run from its folder without the package's dependencies
        to_ascii = None
    out: list[str] = []
    for i, char in enumerate(text):
        ascii_text = to_ascii(char) if to_ascii is not None else ""
        if not ascii_text and unicodedata.category(char) not in INVISIBLE:
            ascii_text = f"U+{ord(char):04X} "
        if out and ascii_text and _apart(text[i - 1], char):
            out.append(" ")
        out.append(ascii_text)
    return "".join(out)


@dataclass(frozen=True)
class Run:
    """A piece of text drawn with one font; `transliterated` when it stands for characters no font has."""

    text: str
    font: int  # index into Lettering.fonts, or BAR
    transliterated: bool = False


@dataclass
class Lettering:
    """Which font draws each character, at any size; made once per picture (it learns coverage as it
    meets characters, so a picture pays only for the characters it shows)."""

    fonts: tuple[str, ...] = field(default_factory=find_fonts)
    _covers: dict[str, int | None] = field(default_factory=dict, repr=False)
    _probes: list[tuple[Font, bytes]] = field(default_factory=list, repr=False)

    def cover(self, char: str) -> int | None:
        """The index of the first font that has `char`, None when none has."""
        if char not in self._covers:
            if not self._probes:
                probes = [font_at(path, PROBE_SIZE) for path in self.fonts]
                self._probes = [(font, glyph(font, NO_GLYPH)) for font in probes]
            found = (i for i, (font, missing) in enumerate(self._probes) if glyph(font, char) != missing)
            self._covers[char] = 0 if char.isspace() else next(found, None)
        return self._covers[char]

    def runs(self, text: str) -> list[Run]:
        """`text` cut into runs of one font each; characters no font has become a transliterated run."""
        runs: list[Run] = []
        start, current = 0, None
        for i, char in enumerate([*text, ""]):
            index = None if not char else BAR if char == EM_DASH else self.cover(char)
            if i and (not char or index != current):
                piece = text[start:i]
                runs.append(
                    Run(piece, current, False) if current is not None else Run(transliterate(piece), 0, True)
                )
                start = i
            current = index
        return [run for run in runs if run.text]

    def foreign(self, text: str) -> int:
        """How many characters of `text` no font here can draw."""
        return sum(1 for char in text if char != EM_DASH and self.cover(char) is None)

    def font(self, run: Run, size: float) -> Font:
        return font_at(self.fonts[max(run.font, 0)], size)

    def length(self, text: str, size: float) -> float:
        dash = font_at(BUILT_IN, size).getlength("M")
        return sum(
            dash * len(run.text) if run.font == BAR else self.font(run, size).getlength(run.text)
            for run in self.runs(text)
        )

    def fitted(self, text: str, size: float, width: float) -> float:
        """`size`, shrunk so `text` fits in `width`."""
        length = self.length(text, size)
        return size * width / length if length > width else size

    def draw(
        self,
        draw: ImageDraw.ImageDraw,
        xy: tuple[float, float],
        text: str,
        size: float,
        fill: Color,
        anchor: str = "la",
    ) -> None:
        """Draw `text` with its top (anchor "la") or its middle ("lm") at `xy`: every run on one baseline."""
        base = font_at(BUILT_IN, size)
        ascent, descent = metrics(base)
        x, y = xy
        baseline = y + (ascent if anchor == "la" else (ascent - descent) / 2)
        dash = base.getlength("M")
        for run in self.runs(text):
            if run.font == BAR:
                _, top, _, bottom = base.getbbox("x", anchor="ls")
                middle = baseline + (top + bottom) / 2
                for _ in run.text:
                    draw.line(
                        (x + dash * 0.15, middle, x + dash * 0.85, middle),
                        fill=fill,
                        width=max(1, round(dash / 12)),
                    )
                    x += dash
                continue
            font = self.font(run, size)
            draw.text(
                (x, baseline),
                run.text,
                font=font,
                fill=FOREIGN_FG if run.transliterated else fill,
                anchor="ls",
            )
            x += font.getlength(run.text)
