"""Thumbnails of history pictures, made once and kept in the cache folder.

A thumbnail is named after the picture's path, size and modification time, so a picture replaced on disk
gets a new one and an unchanged one is never decoded again. It is written to a temporary file and moved
into place, so gallery threads making the same thumbnail at once never serve half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat as kinds
import tempfile
import warnings
from pathlib import Path

SIDE = 360  # the long side of a thumbnail, in pixels (the grid shows them at ~180 px, sharp on HiDPI)
QUALITY = 80
MAX_PIXELS = 200_000_000  # a file claiming more is not decoded (the history holds our own pictures)


def thumbnail(picture: Path, cache: Path) -> bytes | None:
    """The WebP thumbnail of `picture`, from the cache or made now; None when it cannot be read."""
    try:
        stat = picture.stat()
    except OSError:
        return None
    if not kinds.S_ISREG(stat.st_mode):  # a FIFO would block the thread for ever; a folder is no picture
        return None
    key = hashlib.sha256(f"{picture}|{stat.st_size}|{stat.st_mtime_ns}|{SIDE}".encode()).hexdigest()[:32]
    kept = cache / f"{key}.webp"
    with contextlib.suppress(OSError):
        return kept.read_bytes()
    data = _make(picture)
    if data is not None:
        with contextlib.suppress(OSError):
            _keep(kept, data)
    return data


def _make(picture: Path) -> bytes | None:
    from PIL import Image, ImageOps  # only when a thumbnail is missing

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(picture)
            if opened.width * opened.height > MAX_PIXELS:
                return None
            opened.draft("RGB", (SIDE, SIDE))  # JPEG: decode at reduced scale
            image = ImageOps.exif_transpose(opened) or opened
            image.thumbnail((SIDE, SIDE))
            if image.mode not in ("RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            out = io.BytesIO()
            image.save(out, "WEBP", quality=QUALITY)
    except Exception:  # not a picture (any more), truncated, unreadable: the page shows a placeholder
        return None
    return out.getvalue()


def _keep(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".thumb-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
