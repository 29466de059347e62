"""`image-gen show FILE`: the recipe a picture carries, read from the file itself.

FILE may also be a history reference (`@last`, `@2`, `@id:42`). The file may come from anywhere, so every
text it holds is shown with control characters made visible, never acted on by the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import HISTORY_FILE, data_dir
from ..errors import InputImageError
from ..failures import printable
from ..provenance import recipe_rows
from .args import Parser
from .console import Console

MAX_FILE = 512 * 1024 * 1024  # the largest picture we read whole (a 4K answer is ~40 MB)
NO_RECIPE_FIX = "only pictures saved by image-gen-local carry one (a tool that strips metadata removes it)"


def show_parser(prog: str) -> Parser:
    parser = Parser(
        prog=f"{prog} show",
        description="Print the recipe a picture carries (prompt, geometry, model, route, server, time, "
        "inputs), read from the file itself.",
        epilog="FILE may be @last, @2, ... or @id:42 (a picture of the history). Exit 7 when FILE is "
        "missing, not a picture, or carries no recipe.",
    )
    parser.add_argument("file", metavar="FILE", help="a picture saved by image-gen-local, or @last, @2, ...")
    parser.add_argument("--json", action="store_true", help="print the recipe as one JSON document")
    return parser


def run_show(argv: Sequence[str], console: Console, env: Mapping[str, str]) -> int:
    console.json = "--json" in argv
    args = show_parser(console.prog).parse_args(argv)
    path = picture_path(args.file, env)
    recipe = read_recipe_file(path)
    if args.json:
        console.document({"path": str(path), "recipe": recipe})
    else:
        for line in recipe_lines(path, recipe):
            console.result(line)
    return 0


def picture_path(name: str, env: Mapping[str, str]) -> Path:
    """The file a FILE argument names: a path, or the picture a history reference points to."""
    from ..history import History, is_ref

    if not is_ref(name):
        return Path(name).expanduser().absolute()
    with History(data_dir(env) / HISTORY_FILE) as history:
        return history.entry(name).path


def read_recipe_file(path: Path) -> dict[str, Any]:
    """The recipe in a picture file; InputImageError saying why there is none."""
    from ..provenance import read_recipe

    shown = str(path)
    if not path.is_file():
        missing = "no such file" if not path.exists() else "not a file"
        raise InputImageError(f"{shown}: {missing}", "check the path (moved or deleted?)")
    try:
        if path.stat().st_size > MAX_FILE:
            raise InputImageError(f"{shown} is larger than any picture we make", "give a picture file")
        data = path.read_bytes()
    except OSError as exc:
        raise InputImageError(f"{shown} cannot be read ({exc.strerror})", "check its permissions") from None
    try:
        recipe = read_recipe(data)
    except ValueError:
        raise InputImageError(
            f"{shown} is not a PNG, JPEG, WebP or GIF picture", "give a picture saved by image-gen-local"
        ) from None
    if recipe is None:
        raise InputImageError(f"{shown} carries no image-gen-local recipe", NO_RECIPE_FIX)
    return recipe


def recipe_lines(path: Path, recipe: dict[str, Any]) -> list[str]:
    """The recipe for a person: one `name  value` line per fact, control characters made visible."""
    rows = [("file", str(path)), *recipe_rows(recipe)]
    width = max(len(name) for name, _ in rows)
    return [printable(f"{name:<{width}}  {value}".rstrip()) for name, value in rows]
