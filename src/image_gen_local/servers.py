"""Which kind of server is behind the base URL, learned once from /v1/models and cached.

Antigravity Tools, CLIProxyAPI and OpenAI-compatible proxies read different fields; sending each only what
it understands is what makes the size and the verbatim prompt arrive. `Discovery` asks once per process
(workers starting together share the answer) and remembers it across processes in a small cache file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .upstream import (
    ANTIGRAVITY,
    CLIPROXYAPI,
    CLIPROXYAPI_PORT,
    FLASH_IMAGE,
    OPENAI,
    PRO_IMAGE,
    lists_model_grid,
)

if TYPE_CHECKING:
    from .transport import Transport

CACHE_FILE = "servers.json"
CACHE_TTL = 24 * 3600.0
PROBE_TIMEOUT = 10.0


@dataclass
class ServerInfo:
    kind: str
    models: list[str] = field(default_factory=list)
    checked_at: float = 0.0


def _entries(models_answer: Any) -> list[dict[str, Any]]:
    """The model entries of a /v1/models answer; whatever shape it has, never an error."""
    entries = models_answer.get("data") if isinstance(models_answer, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def detect_kind(base_url: str, models_answer: Any) -> str:
    """Guess the server kind from its /v1/models answer (pure)."""
    entries = _entries(models_answer)
    ids = {str(e.get("id", "")) for e in entries}
    owners = {str(e.get("owned_by", "")).lower() for e in entries}
    parts = urlsplit(base_url)
    if lists_model_grid(ids):
        return ANTIGRAVITY
    if (parts.hostname or "").endswith("openai.com"):
        return OPENAI
    if parts.port == CLIPROXYAPI_PORT:
        return CLIPROXYAPI
    if owners == {"antigravity"}:
        return ANTIGRAVITY
    return OPENAI if entries else ANTIGRAVITY


def model_ids(models_answer: Any) -> list[str]:
    return sorted(str(e["id"])[:200] for e in _entries(models_answer) if "id" in e)


def other_tier(model: str) -> str | None:
    """The fallback model of the other tier (pro <-> flash), or None for models we know nothing about."""
    name = model.lower()
    if "image" not in name:
        return None
    return PRO_IMAGE if "flash" in name else FLASH_IMAGE


class ServerCache:
    """A small JSON file of what we learned about each base URL."""

    def __init__(self, directory: Path, ttl: float = CACHE_TTL) -> None:
        self.path = directory / CACHE_FILE
        self.ttl = ttl

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, base_url: str, now: float | None = None) -> ServerInfo | None:
        entry = self._read().get(base_url)
        if not isinstance(entry, dict):
            return None
        try:
            info = ServerInfo(str(entry["kind"]), list(entry.get("models", [])), float(entry["checked_at"]))
        except (KeyError, TypeError, ValueError):
            return None
        if (now if now is not None else time.time()) - info.checked_at > self.ttl:
            return None
        return info

    def put(self, base_url: str, info: ServerInfo) -> None:
        """Best effort: a cache we cannot write only costs one extra /v1/models request next time."""
        data = self._read()
        data[base_url] = asdict(info)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".servers-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(temp, self.path)
        except OSError:
            pass


class Discovery:
    """What this process knows of one server: its kind, asked once (cached, else probed)."""

    def __init__(
        self,
        base_url: str,
        transport: Callable[[], Transport],
        cache: ServerCache | None = None,
        info: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self.base_url = base_url
        self.cache = cache
        self.info = info
        self._transport = transport
        self._server: ServerInfo | None = None
        self._lock = threading.Lock()

    def kind(self, deadline: float, probe: bool = True) -> str:
        """Cached, else learned from /v1/models; an unknown server is treated as Antigravity."""
        with self._lock:  # workers starting together ask once
            if self._server is None and self.cache is not None:
                self._server = self.cache.get(self.base_url)
            left = deadline - time.monotonic()
            if self._server is None and probe and left > 0:  # no time left: no probe, the attempt says so
                self._server = self.probe(min(PROBE_TIMEOUT, left))
            return self._server.kind if self._server else ANTIGRAVITY

    def probe(self, timeout: float) -> ServerInfo | None:
        from .answers import AnswerError, parse_json
        from .transport import TransportFailure

        try:
            answer = self._transport().get("/models", timeout)
            if answer.status != 200:
                return None
            data = parse_json(answer.body)
        except (TransportFailure, AnswerError):
            return None
        server = ServerInfo(detect_kind(self.base_url, data), model_ids(data), time.time())
        self.info(f"server at {self.base_url} looks like {server.kind} ({len(server.models)} models)")
        if self.cache is not None:
            self.cache.put(self.base_url, server)
        return server

    def learn(self, kind: str) -> None:
        """An answer told us the kind (CLIProxyAPI's 400 on the images API): remember it."""
        with self._lock:
            self._server = ServerInfo(kind, self._server.models if self._server else [], time.time())
            if self.cache is not None:
                self.cache.put(self.base_url, self._server)
