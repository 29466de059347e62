"""Settings: flags beat environment beat config file beat defaults.

The config file is TOML at `$IMAGE_GEN_CONFIG`, else `$XDG_CONFIG_HOME/image-gen-local/config.toml`
(`~/.config/...`). Keys: base_url, api_key, model, output_dir, route, timeout, history.
The history of pictures lives in the data folder: `$IMAGE_GEN_DATA_DIR`, else
`$XDG_DATA_HOME/image-gen-local` (`~/.local/share/...`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import UsageError
from .upstream import DEFAULT_MODEL, ROUTES

DEFAULT_BASE_URL = "http://127.0.0.1:8045/v1"
DEFAULT_OUTPUT_DIR = "~/clawd/tmp/image-gen"  # the seed skill's folder, kept so existing agents find files
DEFAULT_TIMEOUT = 600.0
MAX_TIMEOUT = 7 * 24 * 3600.0  # a larger --timeout is taken as a week (README)
ROUTE_CHOICES = ("auto", *ROUTES)

ENV = {
    "base_url": "IMAGE_GEN_BASE_URL",
    "api_key": "IMAGE_GEN_API_KEY",
    "model": "IMAGE_GEN_MODEL",
    "output_dir": "IMAGE_GEN_OUTPUT_DIR",
    "route": "IMAGE_GEN_ROUTE",
    "timeout": "IMAGE_GEN_TIMEOUT",
    "history": "IMAGE_GEN_HISTORY",
}
NO_HISTORY_ENV = "IMAGE_GEN_NO_HISTORY"  # set to 1: the same as IMAGE_GEN_HISTORY=0 or --no-history
HISTORY_FILE = "history.sqlite3"
_SWITCH = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
DEFAULTS: dict[str, Any] = {
    "base_url": DEFAULT_BASE_URL,
    "api_key": None,
    "model": DEFAULT_MODEL,
    "output_dir": DEFAULT_OUTPUT_DIR,
    "route": "auto",
    "timeout": DEFAULT_TIMEOUT,
    "history": True,
}


@dataclass(frozen=True)
class Settings:
    """Where and how to talk to the server, and where pictures go."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    model: str = DEFAULT_MODEL
    output_dir: Path = field(default_factory=lambda: Path(DEFAULT_OUTPUT_DIR).expanduser())
    route: str = "auto"
    timeout: float = DEFAULT_TIMEOUT
    history: bool = True  # record every picture in the history (the data folder's history.sqlite3)
    data_dir: Path = field(default_factory=lambda: data_dir(os.environ))

    @property
    def history_file(self) -> Path:
        """Where the history is, recorded or not (reading `@last` works with recording off)."""
        return self.data_dir / HISTORY_FILE

    def __repr__(self) -> str:  # never show the key, even in a debugger or a traceback
        key = "***" if self.api_key else None
        return (
            f"Settings(base_url={self.base_url!r}, api_key={key}, model={self.model!r}, "
            f"output_dir={str(self.output_dir)!r}, route={self.route!r}, timeout={self.timeout}, "
            f"history={self.history}, data_dir={str(self.data_dir)!r})"
        )


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("IMAGE_GEN_CONFIG"):
        return Path(env["IMAGE_GEN_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "image-gen-local" / "config.toml"


def read_config_file(path: Path, required: bool = False) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise UsageError(f"config file {path} does not exist", "fix IMAGE_GEN_CONFIG or create the file")
        return {}
    if sys.version_info >= (3, 11):  # imported here: most runs have no config file
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} cannot be read ({exc})", "fix or remove it") from None
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise UsageError(
            f"config file {path} has unknown keys: {', '.join(unknown)}", f"use {', '.join(DEFAULTS)}"
        )
    return data


def normalise_base_url(url: str) -> str:
    """Accept the URL with or without /v1 and with a trailing slash; refuse anything but http(s)."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        if "://" not in text:
            raise UsageError(f"base URL {text!r} has no scheme", f"use e.g. http://{text.lstrip('/')}")
        raise UsageError(f"base URL {text!r} is not http(s)", "use e.g. http://127.0.0.1:8045/v1")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def resolve(flags: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Merge flags (None = not given), environment, config file and defaults into Settings."""
    path = config_path(env)
    file_values = read_config_file(path, required=bool(env.get("IMAGE_GEN_CONFIG")))
    merged: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = flags.get(key)
        if value is None and env.get(ENV[key]):
            value = env[ENV[key]]
        if value is None:
            value = file_values.get(key, default)
        merged[key] = value
    route = str(merged["route"]).lower()
    if route not in ROUTE_CHOICES:
        raise UsageError(
            f"route {merged['route']!r} is not one of {', '.join(ROUTE_CHOICES)}", "use --route auto"
        )
    try:
        timeout = float(merged["timeout"])
    except (TypeError, ValueError):
        raise UsageError(
            f"timeout {merged['timeout']!r} is not a number of seconds", "use e.g. --timeout 600"
        ) from None
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(
            f"timeout {merged['timeout']!r} must be more than 0 seconds", "use e.g. --timeout 600"
        )
    timeout = min(timeout, MAX_TIMEOUT)  # beyond a week no clock or socket call behaves: a week it is
    history = switch(merged["history"], f"history setting ({ENV['history']} or the config file)")
    if flags.get("history") is None and switch(env.get(NO_HISTORY_ENV) or "0", NO_HISTORY_ENV):
        history = False
    model = str(merged["model"]).strip()
    if not model:
        raise UsageError("the model name is empty", f"use e.g. --model {DEFAULT_MODEL}")
    return Settings(
        base_url=normalise_base_url(str(merged["base_url"])),
        api_key=(str(merged["api_key"]).strip() or None) if merged["api_key"] else None,
        model=model,
        output_dir=Path(str(merged["output_dir"])).expanduser(),
        route=route,
        timeout=timeout,
        history=history,
        data_dir=data_dir(env),
    )


def switch(value: Any, name: str) -> bool:
    """On or off, from a TOML boolean or the words people write in environment variables."""
    if isinstance(value, bool):
        return value
    found = _SWITCH.get(str(value).strip().lower())
    if found is None:
        raise UsageError(
            f"{name} {value!r} is neither on nor off", "use 1 or 0 (or true/false, yes/no, on/off)"
        )
    return found


def cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("IMAGE_GEN_CACHE_DIR"):
        return Path(env["IMAGE_GEN_CACHE_DIR"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "image-gen-local"


def data_dir(env: Mapping[str, str]) -> Path:
    """Where what we keep lives (the history): $IMAGE_GEN_DATA_DIR, else the XDG data folder."""
    if env.get("IMAGE_GEN_DATA_DIR"):
        return Path(env["IMAGE_GEN_DATA_DIR"]).expanduser()
    base = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return base / "image-gen-local"


def environ() -> dict[str, str]:
    return dict(os.environ)
