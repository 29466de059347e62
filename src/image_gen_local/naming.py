"""File names from prompts: `YYYYmmdd-HHMMSS-<slug>.<ext>`.

The slug keeps letters of every script (a Chinese prompt gives a Chinese name), names emoji, and drops
whatever Linux, macOS or Windows would refuse, so the name is meaningful and safe everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

MAX_SLUG = 60
FALLBACK_SLUG = "picture"
_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}
_DASHES = re.compile(r"-{2,}")


def _pieces(text: str) -> list[str]:
    """Split text into slug characters and '-' separators; emoji become their Unicode names."""
    out: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "LN" or (category[0] == "M" and out and out[-1] != "-"):
            out.append(ch.lower())
        elif category == "So":
            name = unicodedata.name(ch, "")
            out.extend(["-", *name.lower().replace(" ", "-"), "-"] if name else ["-"])
        else:
            out.append("-")
    return out


def slugify(prompt: str, max_len: int = MAX_SLUG) -> str:
    """A short, readable, filesystem-safe slug of the prompt, never empty."""
    text = unicodedata.normalize("NFKC", prompt)
    slug = _DASHES.sub("-", "".join(_pieces(text))).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        # Prefer to end at a word boundary when one is reasonably close.
        boundary = cut.rfind("-")
        slug = cut[:boundary] if boundary >= max_len // 2 else cut
        slug = slug.strip("-")
    if not slug or slug in _WINDOWS_RESERVED:
        slug = f"{slug}-{FALLBACK_SLUG}" if slug else FALLBACK_SLUG
    return slug


def picture_stem(prompt: str, when: datetime) -> str:
    """The name without extension; the timestamp first so files sort by time."""
    return f"{when:%Y%m%d-%H%M%S}-{slugify(prompt)}"


def numbered(stem: str, n: int) -> str:
    """The n-th candidate name for a stem: the stem itself, then stem-2, stem-3, ..."""
    return stem if n <= 1 else f"{stem}-{n}"
