"""What the gallery page shows of each history picture: a card in the grid, and its details when opened.

The same shapes serve the live page (as JSON answers) and the exported folder (in its data file); only the
addresses of the thumbnail and the full picture differ, so they are given by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..history import Entry
from ..provenance import recipe_rows

Urls = Callable[[Entry], tuple[str, str]]  # a picture's thumbnail and full-picture addresses


def card(entry: Entry, urls: Urls) -> dict[str, Any]:
    thumb, full = urls(entry)
    return {
        "id": entry.id,
        "ref": entry.ref,
        "prompt": entry.prompt,
        "model": entry.model,
        "width": entry.width,
        "height": entry.height,
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created)),
        "synthetic": entry.synthetic,
        "exists": entry.exists,
        "path": str(entry.path),
        "thumb": thumb,
        "full": full,
    }


def detail(entry: Entry, urls: Urls) -> dict[str, Any]:
    """A card plus the recipe, fact by fact, and the command that makes the picture again."""
    return {
        **card(entry, urls),
        "lines": [[name, value] for name, value in recipe_rows(entry.recipe)],
        "command": again_command(entry),
    }


def again_command(entry: Entry) -> str:
    return f"image-gen again @id:{entry.id}"
