"""`image-gen history [WORDS]`: the pictures made here, newest first, found by the words of their prompts.

One line per picture on stdout (or one JSON document): its reference (`@1` is the newest), its id, when,
its size and model, the start of its prompt and its path, marked when the file is missing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ..config import HISTORY_FILE, data_dir
from ..failures import printable
from .args import Parser, whole
from .console import Console

MAX_LIMIT = 100_000
PROMPT_SHOWN = 60  # characters of each prompt on a line


def history_parser(prog: str) -> Parser:
    parser = Parser(
        prog=f"{prog} history",
        description="List the pictures made here, newest first; with WORDS, those whose prompt holds "
        "every word (or a word starting with it).",
        epilog=f"Reuse one: `{prog} 'the same at night' --image @1`, `{prog} again @2 --resolution 4k`, "
        f"`{prog} show @id:42`. The history is $IMAGE_GEN_DATA_DIR/{HISTORY_FILE}, else "
        f"$XDG_DATA_HOME/image-gen-local/{HISTORY_FILE} (~/.local/share/...).",
    )
    parser.add_argument("words", nargs="*", metavar="WORDS", help="words to find in the prompts")
    parser.add_argument("--limit", default="20", metavar="N", help="show at most N pictures (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON document with every recipe")
    return parser


def run_history(argv: Sequence[str], console: Console, env: Mapping[str, str]) -> int:
    from ..history import History

    console.json = "--json" in argv
    args = history_parser(console.prog).parse_args(argv)
    limit = whole(args.limit, "--limit", 1, MAX_LIMIT) or 1
    path = data_dir(env) / HISTORY_FILE
    words = " ".join(args.words)
    with History(path) as history:
        entries = history.search(words, limit)
        total = history.count() if entries else 0
    if args.json:
        document = {"history": str(path), "pictures": [entry.as_json() for entry in entries]}
        console.document(document)
    for entry in [] if args.json else entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created))
        prompt = " ".join(entry.prompt.split())
        if len(prompt) > PROMPT_SHOWN:
            prompt = prompt[: PROMPT_SHOWN - 1] + "…"
        marks = (" (synthetic)" if entry.synthetic else "") + ("" if entry.exists else "  [missing]")
        line = (
            f"{entry.ref:>5}  id:{entry.id:<5} {when}  {entry.width}x{entry.height}  {entry.model}  "
            f"{prompt!r}{marks}  {entry.path}"
        )
        console.result(printable(line))
    if not entries:
        found = f"no picture's prompt holds {words!r}" if words else "no pictures yet"
        console.say(f"{found} (history: {path})")
    elif not args.json and len(entries) < total and len(entries) == limit:
        shown = f"the {limit} newest matches" if words else f"the {limit} newest of {total} pictures"
        console.say(f"{shown} shown; --limit N shows more")
    return 0
