"""The gallery's HTTP server: the page, its two JSON answers, thumbnails and pictures, on 127.0.0.1 only.

Prompts and paths are private, and any web page the user visits can make their browser send requests to
127.0.0.1. So the server listens on the loopback interface only, every request must carry the random token
printed with the address (`?t=...`), and a request naming any other Host than 127.0.0.1 or localhost at
its port is refused (a DNS-rebinding page cannot read it either). It serves only GET and HEAD, only
pictures the history lists, each typed by its own first bytes (a file named page.html is never served as
a page), and its page loads nothing from anywhere else. A history that cannot be read is a 503 saying why.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..containers import MIME, sniff
from ..errors import ImageGenError
from ..history import Entry, History
from . import cards, thumbs

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 60
MAX_PAGE = 200
ASSETS = {"/app.js": "text/javascript; charset=utf-8", "/app.css": "text/css; charset=utf-8"}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page(query: str, data: str = "") -> bytes:
    """The page, its asset addresses followed by `query` (the token), with an optional data script."""
    html = (HERE / "page.html").read_text(encoding="utf-8")
    return html.replace("{{query}}", query).replace("{{data}}", data).encode("utf-8")


@dataclass
class Gallery:
    """What the server shows: a history, where thumbnails are kept, and the token every request needs."""

    history: History
    cache: Path
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = 0

    def url(self, words: str = "") -> str:
        search = f"&q={words}" if words else ""
        return f"http://127.0.0.1:{self.port}/?t={self.token}{search}"

    def urls(self, entry: Entry) -> tuple[str, str]:
        return f"thumb/{entry.id}?t={self.token}", f"full/{entry.id}?t={self.token}"

    def pictures(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """One page of cards, newest first, older than `before` when given."""
        words = query.get("q", [""])[0]
        limit = min(max(_number(query.get("limit", [""])[0]) or PAGE_SIZE, 1), MAX_PAGE)
        before = _number(query.get("before", [""])[0])
        entries = self.history.search(words, limit, before)
        more = len(entries) == limit
        return {
            "pictures": [cards.card(entry, self.urls) for entry in entries],
            "next": entries[-1].id if more else None,
            "total": self.history.count() if self.history.path.exists() else 0,
        }

    def entry(self, text: str) -> Entry | None:
        number = _number(text)
        if number is None or not self.history.path.exists():
            return None
        return self.history.by_id(number)


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gallery: Gallery, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.gallery = gallery
        gallery.port = int(self.server_address[1])
        self.hosts = {f"127.0.0.1:{gallery.port}", f"localhost:{gallery.port}"}

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closing a connection it no longer needs (a thumbnail scrolled past) is normal."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart (delayed ACKs)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the user's
        pass

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        gallery = self.server.gallery
        if self.headers.get("Host", "") not in self.server.hosts:
            return self._send(421, b"this gallery answers only at 127.0.0.1\n", "text/plain", head)
        url = urlsplit(self.path)
        if url.path == "/favicon.ico":  # browsers ask for it without the token: nothing to hide, nothing sent
            return self._send(204, b"", "image/x-icon", head)
        query = parse_qs(url.query)
        if not secrets.compare_digest(query.get("t", [""])[0].encode(), gallery.token.encode()):
            refused = b"open the address image-gen gallery printed (with its token)\n"
            return self._send(403, refused, "text/plain", head)
        route, _, rest = url.path.partition("/")[2].partition("/")
        handlers: dict[str, Callable[[], None]] = {
            "": lambda: self._send(200, page(f"?t={gallery.token}"), "text/html; charset=utf-8", head),
            "api": lambda: self._api(rest, query, head),
            "thumb": lambda: self._thumb(rest, head),
            "full": lambda: self._full(rest, head),
        }
        if f"/{route}" in ASSETS and not rest:
            data = (HERE / route).read_bytes()
            return self._send(200, data, ASSETS[f"/{route}"], head)
        handler = handlers.get(route)
        if handler is None or (route == "" and rest):
            return self._send(404, b"not found\n", "text/plain", head)
        try:
            return handler()
        except ImageGenError as exc:  # a damaged or locked history: said to the page, not a traceback
            return self._send(503, f"{exc}\n".encode(), "text/plain; charset=utf-8", head)

    def _api(self, rest: str, query: dict[str, list[str]], head: bool) -> None:
        gallery = self.server.gallery
        if rest == "pictures":
            return self._json(gallery.pictures(query), head)
        kind, _, number = rest.partition("/")
        entry = gallery.entry(number) if kind == "picture" else None
        if entry is None:
            return self._send(404, b"not found\n", "text/plain", head)
        return self._json(cards.detail(entry, gallery.urls), head)

    def _thumb(self, rest: str, head: bool) -> None:
        entry = self.server.gallery.entry(rest)
        data = thumbs.thumbnail(entry.path, self.server.gallery.cache) if entry else None
        if data is None:
            return self._send(404, b"no thumbnail\n", "text/plain", head)
        return self._send(200, data, "image/webp", head, cache=True)

    def _full(self, rest: str, head: bool) -> None:
        entry = self.server.gallery.entry(rest)
        try:
            handle = entry.path.open("rb") if entry and entry.exists else None  # never a FIFO or folder
        except OSError:
            handle = None
        if entry is None or handle is None:
            return self._send(404, b"missing\n", "text/plain", head)
        with handle:
            size = os.fstat(handle.fileno()).st_size
            kind = MIME.get(sniff(handle.read(16)) or "", "application/octet-stream")
            handle.seek(0)
            self._head(200, kind, size, cache=True)
            if not head:
                shutil.copyfileobj(handle, self.wfile)

    def _json(self, document: dict[str, Any], head: bool) -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self._send(200, body, "application/json; charset=utf-8", head)

    def _send(self, status: int, body: bytes, kind: str, head: bool, cache: bool = False) -> None:
        self._head(status, kind, len(body), cache)
        if not head:
            self.wfile.write(body)

    def _head(self, status: int, kind: str, length: int, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "private, max-age=300" if cache else "no-store")
        self.send_header("Content-Security-Policy", POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
