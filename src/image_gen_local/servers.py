"""Which kind of server is behind the base URL, and which models it offers: learned from /v1/models, cached,
and checked against every answer.

Antigravity Tools, CLIProxyAPI, the LiteLLM gateway and other OpenAI-compatible servers read different
fields and routes; sending each what it understands is what makes the size and the verbatim prompt arrive.
`Discovery` asks once per process (workers starting together share the answer) and remembers it across
processes in a small cache file. What was learned is not trusted blindly: when an answer contradicts it
(another kind's headers, a 404 on a route the kind has, a ratio the kind honours ignored), it is learned
again, once per process, since another server may now listen on that port.
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

from .errors import UsageError
from .upstream import (
    ANTIGRAVITY,
    CLIPROXYAPI,
    CLIPROXYAPI_PORT,
    FLASH_IMAGE,
    LITELLM,
    LITELLM_HEADER_PREFIX,
    LITELLM_HEALTH,
    LITELLM_IMAGE_MODE,
    OPENAI,
    PRO_IMAGE,
    UNKNOWN,
    has_grid_suffix,
    lists_model_grid,
)

if TYPE_CHECKING:
    from .transport import Transport

CACHE_FILE = "servers.json"
CACHE_TTL = 24 * 3600.0
PROBE_TIMEOUT = 10.0


# Kinds whose /v1/models list is complete: a model they do not list, they refuse. Antigravity serves any
# name that contains "image" (and cleans suffixes off), so its list says nothing about a name it lacks.
_LIST_IS_COMPLETE = (LITELLM, OPENAI)


@dataclass
class ServerInfo:
    kind: str
    models: list[str] = field(default_factory=list)
    checked_at: float = 0.0
    image_models: list[str] = field(default_factory=list)


def _entries(models_answer: Any) -> list[dict[str, Any]]:
    """The model entries of a /v1/models answer; whatever shape it has, never an error."""
    entries = models_answer.get("data") if isinstance(models_answer, dict) else None
    return [e for e in entries or [] if isinstance(e, dict)] if isinstance(entries, list) else []


def is_litellm(headers: dict[str, str]) -> bool:
    """LiteLLM marks its answers with headers of its own (pure)."""
    return any(name.lower().startswith(LITELLM_HEADER_PREFIX) for name in headers)


def detect_kind(base_url: str, models_answer: Any, headers: dict[str, str] | None = None) -> str:
    """Guess the server kind from its /v1/models answer and headers (pure)."""
    entries = _entries(models_answer)
    ids = {str(e.get("id", "")) for e in entries}
    owners = {str(e.get("owned_by", "")).lower() for e in entries}
    parts = urlsplit(base_url)
    if lists_model_grid(ids):
        return ANTIGRAVITY
    if (parts.hostname or "").endswith("openai.com"):
        return OPENAI
    if is_litellm(headers or {}) or any("mode" in e for e in entries):  # `mode`: LiteLLM's model info
        return LITELLM
    if parts.port == CLIPROXYAPI_PORT:
        return CLIPROXYAPI
    if owners == {"antigravity"}:
        return ANTIGRAVITY
    return OPENAI if entries else ANTIGRAVITY


def model_ids(models_answer: Any) -> list[str]:
    return sorted(str(e["id"])[:200] for e in _entries(models_answer) if "id" in e)


def image_model_ids(models_answer: Any) -> list[str]:
    """The image models on offer: by name, or by LiteLLM's `mode`; the grid's suffixed aliases left out."""
    found = []
    for entry in _entries(models_answer):
        name = str(entry.get("id", ""))
        by_name = any(word in name.lower() for word in ("image", "dall-e"))
        if name and (by_name or entry.get("mode") == LITELLM_IMAGE_MODE) and not has_grid_suffix(name):
            found.append(name)
    return sorted(found)


def root_url(base_url: str) -> str:
    """The server's root: the base URL without its `/v1` (LiteLLM's health routes live there)."""
    trimmed = base_url.rstrip("/")
    return trimmed[: -len("/v1")] if trimmed.endswith("/v1") else trimmed


def answers_litellm_health(transport: Transport, base_url: str, timeout: float) -> bool:
    """LiteLLM serves its liveliness route at the root; other OpenAI-compatible servers do not."""
    from .transport import TransportFailure

    if (urlsplit(base_url).hostname or "").endswith("openai.com"):
        return False
    try:
        answer = transport.get(root_url(base_url) + LITELLM_HEALTH, min(timeout, 5.0))
    except TransportFailure:
        return False
    return answer.status == 200 and b"alive" in bytes(answer.body[:200]).lower()


def check_model(model: str, server: ServerInfo | None) -> tuple[str, str | None]:
    """The model to ask for, and a note when it is not the one given (pure).

    Only servers whose list is complete are held to it. A model they do not list is replaced by the other
    tier when that is listed, else refused (exit 2) with the image models on offer.
    """
    if server is None or server.kind not in _LIST_IS_COMPLETE or not server.models or model in server.models:
        return model, None
    offered = server.image_models or server.models
    named_tier = any(word in model.lower() for word in ("pro", "flash"))
    other = other_tier(model) if named_tier else None
    if other is not None and other in server.models:
        return other, f"model {model} is not offered here; using {other}, the other tier, instead"
    raise UsageError(
        f"model {model} is not offered by this {server.kind} server (image models on offer: "
        f"{', '.join(offered) or 'none'})",
        "pick one of them with --model or IMAGE_GEN_MODEL",
    )


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
            info = ServerInfo(
                str(entry["kind"]),
                list(entry.get("models", [])),
                float(entry["checked_at"]),
                list(entry.get("image_models", [])),
            )
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
    """What this process knows of one server: its kind and models, asked once (cached, else probed), and
    learned again once when an answer contradicts it."""

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
        self._probed = False  # asked the server itself in this process (so a failed probe is not repeated)
        self._rechecked = False
        self._lock = threading.Lock()

    @property
    def server(self) -> ServerInfo | None:
        return self._server

    def kind(self, deadline: float, probe: bool = True) -> str:
        """Cached, else learned from /v1/models; UNKNOWN when the server would not say."""
        with self._lock:  # workers starting together ask once
            if self._server is None and self.cache is not None:
                self._server = self.cache.get(self.base_url)
            if self._server is None and probe and not self._probed and deadline - time.monotonic() > 0:
                self._server = self._probe_now(deadline)
            return self._server.kind if self._server else UNKNOWN

    def _probe_now(self, deadline: float) -> ServerInfo | None:
        self._probed = True
        return self.probe(min(PROBE_TIMEOUT, max(0.1, deadline - time.monotonic())))

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
        kind = detect_kind(self.base_url, data, answer.headers)
        if kind == OPENAI and answers_litellm_health(self._transport(), self.base_url, timeout):
            kind = LITELLM
        server = ServerInfo(kind, model_ids(data), time.time(), image_model_ids(data))
        self.info(f"server at {self.base_url} looks like {server.kind} ({len(server.models)} models)")
        if self.cache is not None:
            self.cache.put(self.base_url, server)
        return server

    def learn(self, kind: str) -> None:
        """An answer told us the kind (CLIProxyAPI's 400 on the images API): remember it."""
        with self._lock:
            old = self._server
            self._server = ServerInfo(
                kind, old.models if old else [], time.time(), old.image_models if old else []
            )
            if self.cache is not None:
                self.cache.put(self.base_url, self._server)

    def recheck(self, deadline: float, reason: str) -> bool:
        """An answer contradicted what we knew: ask the server again, once per process.

        Returns True when the kind changed."""
        with self._lock:
            if self._rechecked:
                return False
            self._rechecked = True
            before = self._server.kind if self._server else UNKNOWN
            self.info(f"checking the server again: {reason}")
            fresh = self._probe_now(deadline)
            if fresh is None:
                return False
            self._server = fresh
            return fresh.kind != before

    def contradicted_by(self, headers: dict[str, str]) -> str | None:
        """Why an answer's headers contradict the known kind, or None (LiteLLM's headers on another kind)."""
        known = self._server.kind if self._server else UNKNOWN
        if known != LITELLM and is_litellm(headers):
            return f"the answer carries LiteLLM's headers, but the server was known as {known}"
        return None
