"""What Antigravity Tools does with a request: pure rules read from its source (docs/server-api.md).

How `size`, `quality`, `image_size` and model suffixes pick the ratio and the tier, how prompts are
rewritten, which quota bucket a model uses, which errors come back in which words. The emulator answers
with these rules; they are pure so each can be unit-tested against the server's own tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..upstream import (
    ENTITY_NOT_FOUND,
    FLASH_IMAGE,
    INPUT_UNREADABLE,
    MODEL_GRID,
    NO_QUOTA,
    PRO_IMAGE,
    RATIO_NAMES,
    SERVER_RATIO_MATCH,
    SERVER_RATIO_ORDER,
    SERVER_SIZES,
    TIERS,
)

TEXT_MODEL = "gemini-3-flash"
MODEL_CREATED = 1706745600
MAX_BODY = 100 * 1024 * 1024

# Model-name ratio hints, tested with `contains` in this order (common_utils.rs): widest names first.
HINT_ORDER = ("21:9", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "5:4", "4:5", "1:1")
MODEL_RATIO_HINTS: tuple[tuple[str, str], ...] = tuple(
    (f"-{sep.join(r.split(':'))}", r) for r in HINT_ORDER for sep in ("x", "-")
)
STRIPPED_SUFFIXES: tuple[str, ...] = (
    "-4k",
    "-2k",
    "-1k",
    "-hd",
    "-standard",
    "-medium",
    *(hint for hint, _ in MODEL_RATIO_HINTS),
)
QUALITY_TIERS: tuple[tuple[str, str], ...] = (
    ("hd", "4K"),
    ("4k", "4K"),
    ("medium", "2K"),
    ("2k", "2K"),
    ("standard", "1K"),
    ("1k", "1K"),
)
HD_SUFFIX = ", (high quality, highly detailed, 4k resolution, hdr)"
STYLE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("vivid", ", (vivid colors, dramatic lighting, rich details)"),
    ("natural", ", (natural lighting, realistic, photorealistic)"),
)
# (config name, data-URL MIME, Pillow format)
FORMATS: tuple[tuple[str, str, str], ...] = (
    ("png", "image/png", "PNG"),
    ("jpeg", "image/jpeg", "JPEG"),
    ("webp", "image/webp", "WEBP"),
)
QUOTA_ERROR = NO_QUOTA + ": {}"
UNREADABLE_IMAGE = INPUT_UNREADABLE + ". Please retry or report"
NOT_FOUND_MESSAGE = ENTITY_NOT_FOUND + "."
UNPROCESSABLE = "Failed to deserialize the JSON body into the target type"
TEXT_REPLY = (
    "This is the image-gen-local emulator: it only draws synthetic pictures and runs no language model. "
    f"Ask an image model such as {FLASH_IMAGE} or {PRO_IMAGE}."
)
MARKDOWN_DATA_IMAGE = re.compile(r"!\[[^\]]*\]\((data:([^;,)]*);base64,([A-Za-z0-9+/=\s]*))\)")
RUST_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.I)
FORM_INT = re.compile(r"\+?\d+")

ROUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/v1/images/generations", "generations", ("POST",)),
    ("/v1/images/edits", "edits", ("POST",)),
    ("/v1/chat/completions", "chat", ("POST",)),
    ("/v1/models", "models", ("GET", "HEAD")),
    ("/health", "health", ("GET", "HEAD")),
    ("/healthz", "health", ("GET", "HEAD")),
)
IMAGE_ROUTES = ("generations", "edits", "chat")


@dataclass(frozen=True)
class Geometry:
    """What the server asks Gemini for: ratio, the imageSize it forwards, and the tier that yields."""

    ratio: str
    image_size: str | None

    @property
    def tier(self) -> str:
        """Upstream ignores sizes it does not know and falls back to its default, 1K."""
        return self.image_size if self.image_size in TIERS else "1K"

    @property
    def pixels(self) -> tuple[int, int]:
        w, h = self.ratio.split(":")
        return SERVER_SIZES[(int(w), int(h))][self.tier]


CONTROL_PATHS = ("/emulator/faults", "/emulator/capacity")  # the emulator's own, not a server's routes


def route_for(path: str) -> tuple[str, tuple[str, ...]]:
    """Route name and allowed methods for a request path (query string ignored)."""
    bare = path.split("?", 1)[0]
    if bare in CONTROL_PATHS:
        return "control", ("GET", "POST")
    for route_path, name, methods in ROUTES:
        if bare == route_path:
            return name, methods
    return "other", ()


def _parse_f64(text: str) -> float | None:
    """Rust's `str::parse::<f64>`: no surrounding spaces, no underscores."""
    return float(text) if RUST_FLOAT.fullmatch(text) else None


def aspect_ratio_from_size(size: str) -> str:
    """`calculate_aspect_ratio_from_size`: exact ratio names, else WxH within 0.05, else 1:1 (not nearest)."""
    if size in RATIO_NAMES:
        return size
    w_text, sep, h_text = size.partition("x")
    if sep:
        w, h = _parse_f64(w_text), _parse_f64(h_text)
        if w is not None and h is not None and w > 0 and h > 0:
            value = w / h
            for name in SERVER_RATIO_ORDER:
                rw, rh = name.split(":")
                if abs(value - int(rw) / int(rh)) < SERVER_RATIO_MATCH:
                    return name
    return "1:1"


def model_ratio(model: str) -> str | None:
    """Ratio hinted by a model name; the server uses `contains` on the name as sent (case-sensitive)."""
    for hint, ratio in MODEL_RATIO_HINTS:
        if hint in model:
            return ratio
    return None


def model_tier(model: str) -> str | None:
    if "-4k" in model or "-hd" in model:
        return "4K"
    if "-2k" in model:
        return "2K"
    return None


def clean_model_name(model: str) -> str:
    """`clean_image_model_name`: lowercase, then strip resolution/ratio suffixes until none is left."""
    name = model.lower()
    changed = True
    while changed:
        changed = False
        for suffix in STRIPPED_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                changed = True
    return name


def resolve_geometry(model: str, size: str | None, quality: str | None, image_size: str | None) -> Geometry:
    """`parse_image_config_with_params`: size beats the model's ratio hint; image_size > quality > suffix.

    Any `quality` string, even one it does not know, stops the model suffix from setting the tier.
    """
    ratio = aspect_ratio_from_size(size) if size is not None else (model_ratio(model) or "1:1")
    forwarded: str | None
    if image_size is not None:
        forwarded = image_size.upper()
    elif quality is not None:
        forwarded = dict(QUALITY_TIERS).get(quality.lower())
    else:
        forwarded = model_tier(model)
    return Geometry(ratio, forwarded)


def quota_bucket(model: str) -> str:
    """Which quota pool serves a model: all image names collapse onto the two image buckets."""
    lower = model.lower()
    if "image" in lower:
        return FLASH_IMAGE if "flash" in lower else PRO_IMAGE
    return model


def rewrite_generation_prompt(prompt: str, quality: str | None, style: str) -> str:
    """/v1/images/generations alters every prompt unless style is something other than vivid/natural."""
    text = prompt + (HD_SUFFIX if quality == "hd" else "")
    return text + dict(STYLE_SUFFIXES).get(style, "")


def rewrite_edit_prompt(prompt: str, style: str | None) -> str:
    return prompt if style is None else f"{prompt}, style: {style}"


def parse_json_n(value: object) -> int:
    """`as_u64().unwrap_or(1)`: only a non-negative JSON integer counts."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


def parse_form_n(text: str | None) -> int:
    return int(text) if text is not None and FORM_INT.fullmatch(text) else 1


def json_str(body: dict[str, Any], *keys: str) -> str | None:
    """`body.get(a).or(body.get(b)).and_then(as_str)`: the first key present decides, even if not a string."""
    for key in keys:
        if key in body:
            value = body[key]
            return value if isinstance(value, str) else None
    return None


def format_mime(image_format: str) -> str:
    return next(mime for name, mime, _ in FORMATS if name == image_format)


def model_list(models: Sequence[str]) -> dict[str, Any]:
    """Configured models, the server's hard-coded pro-image grid when pro is available, and one text model."""
    ids = list(models)
    if PRO_IMAGE in models:
        ids += MODEL_GRID
    ids.append(TEXT_MODEL)
    unique = list(dict.fromkeys(ids))
    return {
        "object": "list",
        "data": [
            {"id": i, "object": "model", "created": MODEL_CREATED, "owned_by": "antigravity"} for i in unique
        ],
    }
