"""`image-gen gallery [WORDS]`: the history as a page of pictures in the browser, or `--export DIR`.

Served, it prints its address (with the token every request needs) on stdout and runs until Ctrl-C;
exported, it prints the folder's index.html.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..config import HISTORY_FILE, cache_dir, data_dir
from ..errors import ExitCode, ImageGenError
from .args import Parser, whole
from .console import Console, Terminated

if TYPE_CHECKING:
    from ..history import History

MAX_PORT = 65535


def gallery_parser(prog: str) -> Parser:
    parser = Parser(
        prog=f"{prog} gallery",
        description="Browse the pictures of the history: a page on 127.0.0.1 (newest first, search, each "
        "picture with its recipe), or a static folder with --export.",
        epilog="The page is served on 127.0.0.1 only, on a free port unless --port is given, and only to "
        "requests carrying the printed address's token. Ctrl-C stops it.",
    )
    parser.add_argument("words", nargs="*", metavar="WORDS", help="start with a search for these words")
    parser.add_argument("--port", metavar="N", help="listen on this port (default: a free one)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument(
        "--export", metavar="DIR", help="write a static gallery to DIR (a new folder) instead"
    )
    parser.add_argument("--limit", metavar="N", help="with --export: at most the N newest matching pictures")
    return parser


def run_gallery(argv: Sequence[str], console: Console, env: Mapping[str, str]) -> int:
    from ..history import History

    args = gallery_parser(console.prog).parse_args(argv)
    words = " ".join(args.words)
    thumbs = cache_dir(env) / "thumbs"
    with History(data_dir(env) / HISTORY_FILE) as history:
        if args.export:
            from ..gallery.export import export

            limit = whole(args.limit, "--limit", 1, 10_000_000)
            index = export(history, Path(args.export), thumbs, words, limit, console.say)
            console.result(str(index))
            return ExitCode.OK
        if history.path.exists():
            history.count()  # a damaged or locked history: one line and exit 9 now, not an empty page
        return _serve(history, thumbs, words, args, console)


def _serve(history: History, thumbs: Path, words: str, args: argparse.Namespace, console: Console) -> int:
    from ..gallery.server import Gallery, Server

    port = whole(args.port, "--port", 1, MAX_PORT) or 0
    gallery = Gallery(history, thumbs)
    try:
        server = Server(gallery, port)
    except OSError as exc:
        raise ImageGenError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})",
            "pick another --port, or leave it out for a free one",
            ExitCode.USAGE,
        ) from None
    url = gallery.url(quote(words))
    with server, contextlib.suppress(KeyboardInterrupt, Terminated):  # Ctrl-C is how it ends, from now on
        console.result(url)
        console.say(f"gallery of {history.path} at {url}; Ctrl-C to stop")
        if args.open:
            import webbrowser

            webbrowser.open(url)
        server.serve_forever()
    console.say("gallery stopped")
    return ExitCode.OK
