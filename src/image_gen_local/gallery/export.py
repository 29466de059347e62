"""`image-gen gallery --export DIR`: the gallery as a folder of static files, to open from disk or share.

DIR gets index.html, the page's script and style, data.js (every picture's card and recipe), thumbs/ and
pictures/ (each picture hard-linked when it can be, else copied). It is built in a hidden folder beside DIR
and renamed into place at the end, so DIR is either complete or absent, and an existing DIR with anything
in it is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from ..errors import OutputError, UsageError
from ..history import Entry, History
from . import cards, thumbs
from .server import HERE, page

BATCH = 500  # history rows read at a time


def export(
    history: History,
    folder: Path,
    cache: Path,
    words: str = "",
    limit: int | None = None,
    say: Callable[[str], None] = lambda _line: None,
) -> Path:
    """Write the gallery of the pictures matching `words` (all when empty) to `folder`; its index.html."""
    folder = folder.expanduser().absolute()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        what = "is not empty" if folder.is_dir() else "is a file"
        raise UsageError(f"--export {folder} already exists and {what}", "choose a new folder")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    except OSError as exc:
        raise OutputError(
            f"cannot write in {folder.parent} ({exc.strerror or exc})", "choose another folder"
        ) from None
    try:
        count = _build(history, building, cache, words, limit, say)
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.rename(building, folder)
    except BaseException as exc:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(
                f"cannot write the gallery to {folder} ({exc.strerror or exc})", "check the folder"
            ) from None
        raise
    say(f"exported {count} picture(s) to {folder}")
    return folder / "index.html"


def _build(
    history: History, root: Path, cache: Path, words: str, limit: int | None, say: Callable[[str], None]
) -> int:
    (root / "thumbs").mkdir()
    (root / "pictures").mkdir()
    shown: list[dict[str, object]] = []
    for entry in _entries(history, words, limit):
        thumb = full = ""
        path = entry.path.name  # the folder may be moved or shared: no path of this machine goes into it
        if entry.exists:
            data = thumbs.thumbnail(entry.path, cache)
            if data is not None:
                thumb = f"thumbs/{entry.id}.webp"
                (root / thumb).write_bytes(data)
            name = f"{entry.id}-{entry.path.name}"
            if _place(entry.path, root / "pictures" / name):
                full = "pictures/" + quote(name)  # an address: `a#b.png` is not the fragment `b.png`
                path = f"pictures/{name}"  # where it is in the export: what "copy path" copies there
        shown.append({**cards.detail(entry, _fixed(thumb, full)), "path": path})
        if len(shown) % 100 == 0:
            say(f"{len(shown)} pictures exported...")
    document = {"pictures": shown, "total": len(shown)}
    script = "window.GALLERY_DATA = " + json.dumps(document, ensure_ascii=False) + ";\n"
    (root / "data.js").write_text(script, encoding="utf-8")
    (root / "index.html").write_bytes(page("", '<script src="data.js"></script>\n'))
    for asset in ("app.js", "app.css"):
        shutil.copyfile(HERE / asset, root / asset)
    return len(shown)


def _fixed(thumb: str, full: str) -> cards.Urls:
    return lambda _entry: (thumb, full)


def _entries(history: History, words: str, limit: int | None) -> Iterator[Entry]:
    """The matching pictures, newest first, read a batch at a time."""
    before: int | None = None
    given = 0
    while limit is None or given < limit:
        batch = history.search(words, BATCH if limit is None else min(BATCH, limit - given), before)
        yield from batch
        given += len(batch)
        if len(batch) < BATCH:
            return
        before = batch[-1].id


def _place(source: Path, target: Path) -> bool:
    """The picture in the export: a hard link (no space used) when the file system allows, else a copy.
    False when the picture went away meanwhile (it is then shown as missing)."""
    try:
        os.link(source, target)
    except OSError:
        with contextlib.suppress(OSError):
            target.unlink()
        try:
            shutil.copy2(source, target)
        except FileNotFoundError:
            if source.exists():
                raise
            return False
    return True
