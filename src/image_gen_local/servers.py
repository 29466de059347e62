"""Which kind of server is behind the base URL, learned once from /v1/models and cached.

Antigravity Tools, CLIProxyAPI and OpenAI-compatible proxies read different fields; sending each only what
it understands is what makes the size and the verbatim prompt arrive.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .protocol import ANTIGRAVITY, CLIPROXYAPI, OPENAI

CACHE_FILE = "servers.json"
CACHE_TTL = 24 * 3600.0

PRO = "gemini-3-pro-image"
FLASH = "gemini-3.1-flash-image"


@dataclass
class ServerInfo:
    kind: str
    models: list[str] = field(default_factory=list)
    checked_at: float = 0.0


def detect_kind(base_url: str, models_answer: Any) -> str:
    """Guess the server kind from its /v1/models answer (pure)."""
    entries = models_answer.get("data") if isinstance(models_answer, dict) else None
    entries = [e for e in entries or [] if isinstance(e, dict)]
    ids = {str(e.get("id", "")) for e in entries}
    owners = {str(e.get("owned_by", "")).lower() for e in entries}
    parts = urlsplit(base_url)
    # Antigravity Tools always lists its grid of ratio-suffixed pro-image ids.
    if any(i.startswith(PRO + "-") and i.endswith(("-16x9", "-1x1")) for i in ids):
        return ANTIGRAVITY
    if (parts.hostname or "").endswith("openai.com"):
        return OPENAI
    if parts.port == 8317:
        return CLIPROXYAPI
    if owners == {"antigravity"}:
        return ANTIGRAVITY
    return OPENAI if entries else ANTIGRAVITY


def model_ids(models_answer: Any) -> list[str]:
    entries = models_answer.get("data") if isinstance(models_answer, dict) else None
    return sorted(str(e["id"]) for e in entries or [] if isinstance(e, dict) and "id" in e)


def other_tier(model: str) -> str | None:
    """The fallback model of the other tier (pro <-> flash), or None for models we know nothing about."""
    name = model.lower()
    if "image" not in name:
        return None
    return PRO if "flash" in name else FLASH


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
