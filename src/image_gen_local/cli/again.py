"""`image-gen again REF [PROMPT] [options]`: make a picture again from its recipe, options overriding.

REF is a picture of the history (`@last`, `@2`, `@id:42`) or a picture file carrying a recipe. The recipe
gives the prompt, the input pictures, the geometry asked for and the model; a new PROMPT or any option
replaces its part. The server, key, route, deadline and output folder are today's settings, as for any
command (a recipe never holds the key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import HISTORY_FILE, data_dir
from ..errors import InputImageError, UsageError
from .args import Parser, connection_options, history_option, picture_options, settings_from
from .console import Console
from .generate import make
from .show import picture_path, read_recipe_file


def again_parser(prog: str) -> Parser:
    parser = Parser(
        prog=f"{prog} again",
        description="Make a picture again from its recipe; a new PROMPT or any option overrides its part.",
        epilog=f"REF: @last (the newest picture), @2, ... or @id:42 (see `{prog} history`), or a picture "
        "file saved by image-gen-local. The server, key, route, timeout and output folder are today's "
        "settings.",
    )
    parser.intermixed = True
    parser.add_argument("ref", metavar="REF", help="@last, @2, @id:42, or a picture file")
    parser.add_argument("prompt", nargs="?", help="a new prompt (default: the recipe's)")
    picture_options(parser, each=" (default: the recipe's)", defaults=False)
    parser.add_argument("-o", "--output", metavar="FILE", help="exact file for a single picture")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of marker lines")
    parser.add_argument("--dry-run", action="store_true", help="print the request(s); send nothing")
    connection_options(parser)
    history_option(parser)
    return parser


def run_again(argv: Sequence[str], console: Console, env: Mapping[str, str]) -> int:
    console.json = "--json" in argv
    args = again_parser(console.prog).parse_args(argv)
    console.verbose = args.verbose
    recipe = _recipe(args.ref, env)
    found = recipe.get("requested")
    requested: dict[str, Any] = found if isinstance(found, dict) else {}
    args.model = args.model or requested.get("model") or recipe.get("model")
    settings = settings_from(args, env)
    console.hide(settings.api_key)
    from ..request import request_from_options

    images = args.image or _inputs(args.ref, recipe, console)
    if recipe.get("prompt_cut") and args.prompt is None:
        raise UsageError(
            f"{args.ref} holds only the start of its prompt ({recipe['prompt_cut']} characters did not fit)",
            "use its history reference (`image-gen history`), or give the prompt",
        )
    # A new ratio or resolution replaces an exact size asked for before, keeping that size's ratio.
    keep_size = not (args.size or args.aspect_ratio or args.resolution)
    size = args.size or (requested.get("size") if keep_size else None)
    dropped = requested.get("ratio") if requested.get("size") and not keep_size else None
    try:
        request = request_from_options(
            args.prompt if args.prompt is not None else str(recipe["prompt"]),
            images=images,
            size=size,
            resolution=args.resolution or requested.get("resolution"),
            aspect_ratio=args.aspect_ratio or requested.get("aspect_ratio") or dropped,
            count=args.count or 1,
            output=args.output,
        )
    except ValueError as exc:
        raise UsageError(f"{args.ref}: {exc}") from None
    return make(request, settings, args, console, env)


def _recipe(ref: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The recipe REF names: the history's copy when it has one (it knows where the inputs are)."""
    from ..history import History, is_ref

    path = data_dir(env) / HISTORY_FILE
    if is_ref(ref):
        with History(path) as history:
            return history.entry(ref).recipe
    file = picture_path(ref, env)
    recipe = read_recipe_file(file)
    if path.is_file():
        with History(path) as history:
            entry = history.by_path(file)
        if entry is not None and entry.recipe.get("made") == recipe.get("made"):
            return entry.recipe
    return recipe


def _inputs(ref: str, recipe: dict[str, Any], console: Console) -> list[str]:
    """The recipe's input pictures, where they were; each must still be there (and is checked unchanged)."""
    paths: list[str] = []
    for number, item in enumerate(recipe.get("inputs") or [], start=1):
        name = str(item.get("name", "?")) if isinstance(item, dict) else "?"
        where = item.get("path") if isinstance(item, dict) else None
        if not where:
            raise UsageError(
                f"{ref} was made from {name}, and only the history knows where that file was",
                f"give it again with --image {name}",
            )
        if not Path(where).is_file():
            raise InputImageError(
                f"input {number} of {ref} ({where}) is missing: moved or deleted since",
                "give it with --image NEW_PATH",
            )
        if item.get("sha256") and _digest(Path(where)) != item["sha256"]:
            console.warn(f"{where} has changed since {ref} was made; using it as it is now")
        paths.append(where)
    return paths


def _digest(path: Path) -> str | None:
    from ..files import sha256_of

    try:
        return sha256_of(path)
    except OSError:
        return None  # unreadable: loading it as an input says why
