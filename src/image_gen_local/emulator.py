"""Offline emulator of the Antigravity Tools image API (see server-api.md).

Users try the tool without spending quota, and every test of the project runs against it, so it copies the
real server where a client can notice (status codes, plain-text error bodies, how `size`, `quality`,
`image_size` and model suffixes pick the aspect ratio and pixel size, prompt rewriting, chat markdown
replies) and draws pictures that say loudly that they are synthetic.

The server-side rules are pure functions so they can be unit-tested; only `_Handler` does I/O.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import email.parser
import email.policy
import hashlib
import hmac
import io
import json
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, PngImagePlugin

from image_gen_local.geometry import SERVER_SIZES, TIERS

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "Geometry",
    "ImageJob",
    "InputImage",
    "RecordedRequest",
    "Reply",
    "aspect_ratio_from_size",
    "chat_completion",
    "chat_stream",
    "clean_model_name",
    "markdown_image",
    "model_list",
    "quota_bucket",
    "resolve_geometry",
    "rewrite_edit_prompt",
    "rewrite_generation_prompt",
    "serve",
]

PRO_IMAGE = "gemini-3-pro-image"
FLASH_IMAGE = "gemini-3.1-flash-image"
DEFAULT_IMAGE_MODEL = FLASH_IMAGE
TEXT_MODEL = "gemini-3-flash"
MODEL_CREATED = 1706745600
MAX_BODY = 100 * 1024 * 1024
EMULATOR_HEADER = "X-Emulator"
EMULATOR_HEADER_VALUE = "image-gen-local (synthetic images)"
BANNER = "SYNTHETIC — image-gen-local emulator, no AI model was used"
PNG_SOFTWARE = "image-gen-local emulator"
PNG_COMMENT = "synthetic image, no AI model was used"
TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"

EXACT_RATIOS = ("21:9", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "5:4", "4:5", "1:1")
# common_utils.rs compares W/H with the supported ratios in this order, first hit within 0.05 wins.
TOLERANCE_ORDER = ("21:9", "16:9", "4:3", "3:4", "9:16", "3:2", "2:3", "5:4", "4:5", "1:1")
RATIO_TOLERANCE = 0.05
# Model-name ratio hints, tested with `contains` in this order (common_utils.rs).
MODEL_RATIO_HINTS: tuple[tuple[str, str], ...] = tuple(
    (f"-{sep.join(r.split(':'))}", r)
    for r in ("21:9", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "5:4", "4:5", "1:1")
    for sep in ("x", "-")
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
# Pillow format → the MIME type a client should declare for such bytes.
SNIFFED_MIME: tuple[tuple[str, str], ...] = (
    ("PNG", "image/png"),
    ("JPEG", "image/jpeg"),
    ("MPO", "image/jpeg"),
    ("WEBP", "image/webp"),
    ("GIF", "image/gif"),
    ("HEIF", "image/heif"),
    ("AVIF", "image/avif"),
    ("BMP", "image/bmp"),
    ("TIFF", "image/tiff"),
)
QUOTA_ERROR = "No accounts available with quota for model: {}"
UNREADABLE_IMAGE = "Unable to process input image. Please retry or report"
NOT_FOUND_MESSAGE = "Requested entity was not found."
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


# --------------------------------------------------------------------------------------------------- data


@dataclass
class EmulatorConfig:
    """How this emulated server behaves; `models` are the quota buckets that "have accounts"."""

    api_key: str | None = None
    latency: float = 0.0
    models: tuple[str, ...] = (PRO_IMAGE, FLASH_IMAGE)
    image_format: str = "png"
    verbose: bool = False

    def __post_init__(self) -> None:
        fmt = self.image_format.lower()
        fmt = "jpeg" if fmt == "jpg" else fmt
        if fmt not in {name for name, _, _ in FORMATS}:
            raise ValueError(f"image_format {self.image_format!r} is not one of png, jpeg, webp")
        self.image_format = fmt
        self.models = tuple(self.models)


@dataclass
class Reply:
    """One HTTP answer; also what tests queue with `Emulator.script` to drill the client's error handling."""

    status: int
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = TEXT_PLAIN
    delay: float = 0.0

    @property
    def payload(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


@dataclass
class RecordedRequest:
    """What arrived and how the server read it, so tests can check what the client really sent."""

    method: str
    path: str
    route: str
    authorized: bool
    body: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    model: str | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None  # the imageSize the server would forward upstream; None = upstream default
    effective_prompt: str | None = None
    status: int = 0  # what the emulator answered
    scripted: bool = False  # answered from Emulator.script()


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


@dataclass(frozen=True)
class InputImage:
    """An image the client sent; the server forwards it with the declared MIME and never sniffs."""

    label: str
    declared_mime: str
    data: bytes
    sniffed: str | None  # Pillow format name, None when Pillow cannot read the bytes

    @property
    def mismatch(self) -> bool:
        return self.sniffed is not None and sniffed_mime(self.sniffed) != self.declared_mime


@dataclass(frozen=True)
class ImageJob:
    """Everything needed to answer one image request; `error` is set when the server would fail late."""

    route: str
    model: str
    geometry: Geometry
    prompt: str
    count: int = 1
    response_format: str = "b64_json"
    inputs: tuple[InputImage, ...] = ()
    stream: bool = False
    error: Reply | None = None
    upstream_error: bool = False  # the real server only learns of `error` from Google, after its latency


@dataclass(frozen=True)
class TextJob:
    """A chat request for a text model: the emulator answers with a fixed notice."""

    model: str
    prompt: str
    stream: bool


@dataclass(frozen=True)
class FormPart:
    """One multipart field; `content_type` is None when the part declared none (the server then guesses)."""

    name: str
    content_type: str | None
    filename: str | None
    data: bytes


# ------------------------------------------------------------------------------------- pure server logic


def plain(status: int, text: str) -> Reply:
    return Reply(status, text, content_type=TEXT_PLAIN)


def empty(status: int) -> Reply:
    return Reply(status, b"", content_type="")


def json_reply(status: int, obj: object) -> Reply:
    return Reply(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), content_type=APPLICATION_JSON)


def route_for(path: str) -> tuple[str, tuple[str, ...]]:
    """Route name and allowed methods for a request path (query string ignored)."""
    bare = path.split("?", 1)[0]
    for route_path, name, methods in ROUTES:
        if bare == route_path:
            return name, methods
    return "other", ()


def _parse_f64(text: str) -> float | None:
    """Rust's `str::parse::<f64>`: no surrounding spaces, no underscores."""
    return float(text) if RUST_FLOAT.fullmatch(text) else None


def aspect_ratio_from_size(size: str) -> str:
    """`calculate_aspect_ratio_from_size`: exact ratio names, else WxH within 0.05, else 1:1 (not nearest)."""
    if size in EXACT_RATIOS:
        return size
    w_text, sep, h_text = size.partition("x")
    if sep:
        w, h = _parse_f64(w_text), _parse_f64(h_text)
        if w is not None and h is not None and w > 0 and h > 0:
            value = w / h
            for name in TOLERANCE_ORDER:
                rw, rh = name.split(":")
                if abs(value - int(rw) / int(rh)) < RATIO_TOLERANCE:
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


def _json_str(body: dict[str, Any], *keys: str) -> str | None:
    """`body.get(a).or(body.get(b)).and_then(as_str)`: the first key present decides, even if not a string."""
    for key in keys:
        if key in body:
            value = body[key]
            return value if isinstance(value, str) else None
    return None


def sniffed_mime(fmt: str) -> str:
    return dict(SNIFFED_MIME).get(fmt) or Image.MIME.get(fmt, f"image/{fmt.lower()}")


def sniff_format(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format
    except Exception:
        return None


def format_mime(image_format: str) -> str:
    return next(mime for name, mime, _ in FORMATS if name == image_format)


def model_list(models: Sequence[str]) -> dict[str, Any]:
    """Configured models, the server's hard-coded pro-image grid when pro is available, and one text model."""
    ids = list(models)
    if PRO_IMAGE in models:
        ids += [
            f"{PRO_IMAGE}{tier}{ratio}"
            for tier in ("", "-2k", "-4k")
            for ratio in ("", "-1x1", "-4x3", "-3x4", "-16x9", "-9x16", "-21x9")
        ]
    ids.append(TEXT_MODEL)
    unique = list(dict.fromkeys(ids))
    return {
        "object": "list",
        "data": [
            {"id": i, "object": "model", "created": MODEL_CREATED, "owned_by": "antigravity"} for i in unique
        ],
    }


def markdown_image(mime: str, b64: str) -> str:
    return f"![image](data:{mime};base64,{b64})"


def chat_completion(model: str, content: str, created: int, completion_id: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def chat_stream(model: str, content: str, created: int, completion_id: str) -> bytes:
    """SSE as the server sends it: role chunk, one chunk with the whole content, stop chunk, [DONE]."""
    deltas: list[tuple[dict[str, str], str | None]] = [
        ({"role": "assistant"}, None),
        ({"content": content}, None),
        ({}, "stop"),
    ]
    events = []
    for delta, finish in deltas:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        events.append(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode("utf-8")


def parse_json_body(content_type: str | None, raw: bytes) -> tuple[Any, Reply | None]:
    """axum's `Json` extractor: 415 unless the type is JSON, 400 on bad JSON; returns (value, error)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if not (mime == APPLICATION_JSON or (mime.startswith("application/") and mime.endswith("+json"))):
        return None, plain(415, "Expected request with `Content-Type: application/json`")
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, plain(400, f"Failed to parse the request body as JSON: {exc}")


def parse_multipart(content_type: str | None, raw: bytes) -> list[FormPart] | Reply:
    """Split a multipart/form-data body with the stdlib email parser."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime != "multipart/form-data" or "boundary=" not in (content_type or ""):
        return plain(400, "Invalid `boundary` for `multipart/form-data` request")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        return plain(400, "Multipart error: failed to parse the multipart body")
    parts: list[FormPart] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return plain(400, "Multipart error: a part has no field name")
        payload = part.get_payload(decode=True)
        declared = part.get("Content-Type")
        parts.append(
            FormPart(
                name=name,
                content_type=declared.split(";", 1)[0].strip().lower() if declared else None,
                filename=part.get_filename(),
                data=payload if isinstance(payload, bytes) else b"",
            )
        )
    return parts


@dataclass(frozen=True)
class EditForm:
    """The edits form split the way the server reads it: text fields, then images in upstream order."""

    texts: dict[str, str]
    images: tuple[InputImage, ...]


def _input_image(part: FormPart, default_mime: str) -> InputImage:
    return InputImage(part.name, part.content_type or default_mime, part.data, sniff_format(part.data))


def split_edit_form(parts: Sequence[FormPart]) -> EditForm:
    """A repeated `image` replaces the previous one; other `image*` fields (not image_size) are references."""
    texts: dict[str, str] = {}
    main: InputImage | None = None
    mask: InputImage | None = None
    references: list[InputImage] = []
    for part in parts:
        if part.name == "image":
            main = _input_image(part, "image/png")
        elif part.name == "mask":
            mask = _input_image(part, "image/png")
        elif part.name.startswith("image") and part.name != "image_size":
            references.append(_input_image(part, "image/jpeg"))
        else:
            texts[part.name] = part.data.decode("utf-8", "replace")
    images = tuple(image for image in (main, mask, *references) if image is not None)
    return EditForm(texts, images)


def _with_error(job: ImageJob, error: Reply, upstream: bool = False) -> ImageJob:
    """Attach a late failure; `upstream` marks failures the real server only learns after calling Google."""
    return replace(job, error=error, upstream_error=upstream)


def _upstream_image_error(route: str) -> Reply:
    if route == "chat":
        return json_reply(
            400, {"error": {"message": UNREADABLE_IMAGE, "type": "upstream_error", "code": 400}}
        )
    return plain(400, f"Upstream error 400: {UNREADABLE_IMAGE}")


def plan_generation(body: object, models: Sequence[str]) -> ImageJob | Reply:
    """`handle_images_generations` up to the upstream call."""
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    prompt = _json_str(fields, "prompt")
    if not prompt:
        return plain(400, "Missing 'prompt' field")
    model = _json_str(fields, "model")
    model = DEFAULT_IMAGE_MODEL if model is None else model
    quality = _json_str(fields, "quality")
    style = _json_str(fields, "style")
    geometry = resolve_geometry(
        model, _json_str(fields, "size"), quality, _json_str(fields, "image_size", "imageSize")
    )
    cleaned = clean_model_name(model)
    job = ImageJob(
        route="generations",
        model=cleaned,
        geometry=geometry,
        prompt=rewrite_generation_prompt(prompt, quality, "vivid" if style is None else style),
        count=parse_json_n(fields.get("n")),
        response_format=_json_str(fields, "response_format") or "b64_json",
    )
    if job.count == 0:
        return _with_error(job, plain(502, "No images generated"))
    bucket = quota_bucket(cleaned)
    if bucket not in models:
        return _with_error(job, plain(502, QUOTA_ERROR.format(bucket)))
    return job


def plan_edit(form: EditForm, models: Sequence[str]) -> ImageJob | Reply:
    """`handle_images_edits` up to the upstream call: `quality` is never read, the pro bucket always used."""
    texts = form.texts
    prompt = texts.get("prompt")
    if not prompt:
        return plain(400, "Missing prompt")
    if not form.images:
        return plain(400, "Missing image")
    model = texts.get("model", DEFAULT_IMAGE_MODEL)
    size = texts.get("aspect_ratio", texts.get("size", "1024x1024"))
    job = ImageJob(
        route="edits",
        model=clean_model_name(model),
        geometry=resolve_geometry(model, size, None, texts.get("image_size")),
        prompt=rewrite_edit_prompt(prompt, texts.get("style")),
        count=parse_form_n(texts.get("n")),
        response_format=texts.get("response_format") or "b64_json",
        inputs=form.images,
    )
    if PRO_IMAGE not in models:
        return _with_error(job, plain(502, QUOTA_ERROR.format(PRO_IMAGE)))
    if job.count == 0:
        return _with_error(job, plain(502, "No images generated"))
    if any(image.sniffed is None for image in job.inputs):
        return _with_error(job, _upstream_image_error("edits"), upstream=True)
    return job


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") in ("text", "input_text")
            and isinstance(part.get("text"), str)
        )
    return ""


def _data_url(url: str) -> tuple[str, bytes] | None:
    header, sep, data = url.partition(",")
    if not (sep and header.startswith("data:") and header.endswith(";base64")):
        return None
    try:
        return header[5:-7], base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return header[5:-7], b""


def chat_prompt(messages: Sequence[object]) -> str:
    """The last user message's text, without pasted-back markdown images (those are image inputs)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return MARKDOWN_DATA_IMAGE.sub("", _message_text(message.get("content"))).strip()
    return ""


def chat_inputs(messages: Sequence[object]) -> tuple[InputImage, ...]:
    """`image_url` data URLs in user messages, and markdown data images in any message's text (§5.3)."""
    found: list[InputImage] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, list):
            for part in content:
                if not (isinstance(part, dict) and part.get("type") == "image_url"):
                    continue
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                decoded = _data_url(url) if isinstance(url, str) else None
                if decoded is not None:
                    mime, data = decoded
                    found.append(InputImage(f"messages[{i}] image_url", mime, data, sniff_format(data)))
        for match in MARKDOWN_DATA_IMAGE.finditer(_message_text(content)):
            decoded = _data_url(match.group(1))
            if decoded is not None:
                mime, data = decoded
                found.append(InputImage(f"messages[{i}] markdown", mime, data, sniff_format(data)))
    return tuple(found)


def plan_chat(body: object, models: Sequence[str]) -> ImageJob | TextJob | Reply:
    """`handle_chat_completions` for the three kinds of model names it tells apart."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return plain(422, f"{UNPROCESSABLE}: missing field `model`")
    if not isinstance(body.get("messages"), list):
        return plain(422, f"{UNPROCESSABLE}: missing field `messages`")
    model: str = body["model"]
    messages: list[object] = body["messages"]
    stream = body.get("stream") is True
    lower = model.lower()
    if "gemini" in lower and "-image" in lower:
        job = ImageJob(
            route="chat",
            model=model,
            geometry=resolve_geometry(
                model, _json_str(body, "size"), _json_str(body, "quality"), _json_str(body, "imageSize")
            ),
            prompt=chat_prompt(messages),
            response_format="markdown",
            inputs=chat_inputs(messages),
            stream=stream,
        )
        if quota_bucket(model) not in models:
            error = {"error": {"message": NOT_FOUND_MESSAGE, "type": "upstream_error", "code": 404}}
            return _with_error(job, json_reply(404, error), upstream=True)
        if any(image.sniffed is None for image in job.inputs):
            return _with_error(job, _upstream_image_error("chat"), upstream=True)
        return job
    if any(word in lower for word in ("image", "dall-e", "midjourney")):
        return plain(502, QUOTA_ERROR.format(model))
    return TextJob(model, chat_prompt(messages), stream)


# ------------------------------------------------------------------------------------------------ pictures

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Color = tuple[int, int, int]
DARKEN = tuple(v * 3 // 10 for v in range(256)) * 3
BANNER_BG = (200, 16, 32)
BANNER_FG = (255, 255, 255)
TITLE_FG = (255, 214, 0)
PARAM_FG = (200, 205, 215)
PROMPT_FG = (255, 255, 255)
WARN_FG = (255, 90, 90)
THUMB_SIDE = 640
PROMPT_CAPTION = "prompt as the server would send it upstream:"
PANEL_TITLE = "SYNTHETIC IMAGE — not made by an AI model"
EM_DASH = "—"
WATERMARK = "SYNTHETIC"
WATERMARK_FG = (78, 80, 92)


def _font(size: float) -> Font:
    return ImageFont.load_default(size=max(8, round(size)))


def _text_length(text: str, font: Font) -> float:
    parts = text.split(EM_DASH)
    return sum(font.getlength(part) for part in parts) + (len(parts) - 1) * font.getlength("M")


def _draw_text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: Font, fill: Color, anchor: str = "la"
) -> None:
    """Draw text with the default font, which has no em dash glyph: draw that one as a bar."""
    x, y = xy
    dash = font.getlength("M")
    _, top, _, bottom = font.getbbox("x", anchor=anchor)
    for i, part in enumerate(text.split(EM_DASH)):
        if i:
            middle = y + (top + bottom) / 2
            draw.line(
                (x + dash * 0.15, middle, x + dash * 0.85, middle), fill=fill, width=max(1, round(dash / 12))
            )
            x += dash
        draw.text((x, y), part, font=font, fill=fill, anchor=anchor)
        x += font.getlength(part)


def _fitted_font(text: str, size: float, width: float) -> Font:
    """The default font at `size`, shrunk so `text` fits in `width`."""
    font = _font(size)
    length = _text_length(text, font)
    return _font(size * width / length) if length > width else font


def _line_height(font: Font) -> int:
    return round(font.getbbox("Ag")[3] * 1.3)


def _longest_prefix(word: str, font: Font, width: float) -> int:
    """Length of the longest prefix of `word` that fits `width` (at least 1), by bisection."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if _text_length(word[:middle], font) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _wrap(text: str, font: Font, width: float) -> list[str]:
    """Greedy word wrap by measured width; words longer than a line are cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if _text_length(candidate, font) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while len(word) > 1 and _text_length(word, font) > width:
                cut = _longest_prefix(word, font, width)
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    return lines


def _background(
    size: tuple[int, int], prompt: str, index: int, panel: tuple[int, int, int, int]
) -> Image.Image:
    """A diagonal two-colour gradient seeded by the prompt, darker under the text panel.

    Drawn at 256 px and scaled with NEAREST, which is invisible on a 256-level gradient and keeps 4K fast.
    """
    seed = hashlib.sha256(prompt.encode("utf-8")).digest()
    start = [40 + b * 180 // 255 for b in seed[0:3]]
    end = [40 + b * 180 // 255 for b in seed[3:6]]
    vertical = Image.linear_gradient("L")
    mix = ImageChops.add(vertical, vertical.rotate(90), scale=2.0)
    if index % 2:
        mix = ImageOps.mirror(mix)
    bands = [mix.point([a + (b - a) * v // 255 for v in range(256)]) for a, b in zip(start, end, strict=True)]
    small = Image.merge("RGB", bands)
    img = small.resize(size, Image.Resampling.NEAREST)
    sx, sy = small.width / size[0], small.height / size[1]
    box = (panel[0] * sx, panel[1] * sy, panel[2] * sx, panel[3] * sy)
    dark = small.point(list(DARKEN)).resize(
        (panel[2] - panel[0], panel[3] - panel[1]), Image.Resampling.NEAREST, box=box
    )
    img.paste(dark, panel[:2])
    return img


def _banner(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=BANNER_BG)
    font = _fitted_font(text, (y1 - y0) * 0.55, (x1 - x0) * 0.94)
    start = (x0 + x1 - _text_length(text, font)) / 2
    _draw_text(draw, (start, (y0 + y1) / 2), text, font, BANNER_FG, anchor="lm")


def decode_thumbnail(data: bytes, side: int = THUMB_SIDE) -> Image.Image | None:
    """A small RGBA copy of an input image, or None when Pillow cannot decode it."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (side, side))
            im.thumbnail((side, side))
            return im.convert("RGBA")
    except Exception:
        return None


def _draw_inputs(
    img: Image.Image,
    box: tuple[int, int, int, int],
    inputs: Sequence[InputImage],
    thumbs: Sequence[Image.Image],
    unit: int,
) -> None:
    """Thumbnails of the inputs, labelled with field name and declared MIME, since the server trusts it."""
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    gap = max(4, unit // 80)
    label_size = unit * 0.022
    label_line = _line_height(_font(label_size))
    image_height = max(8, y1 - y0 - 3 * label_line)
    slot = min(image_height * 1.5, (x1 - x0 - gap * (len(inputs) - 1)) / len(inputs))
    for i, (item, thumb) in enumerate(zip(inputs, thumbs, strict=True)):
        left = round(x0 + i * (slot + gap))
        fitted = ImageOps.contain(thumb, (max(1, round(slot)), image_height))
        px = left + (round(slot) - fitted.width) // 2
        img.paste(fitted, (px, y0 + image_height - fitted.height), fitted)
        frame = (left, y0, left + round(slot), y0 + image_height)
        draw.rectangle(frame, outline=PARAM_FG, width=max(1, unit // 400))
        y = y0 + image_height + 2
        label = f"{item.label} ({item.declared_mime})"
        _draw_text(draw, (left, y), label, _fitted_font(label, label_size, slot), PROMPT_FG)
        if item.mismatch:
            note = ("declared MIME does not", f"match bytes ({item.sniffed})")
            font = _fitted_font(max(note, key=len), label_size, slot)
            for row, text in enumerate(note, start=1):
                _draw_text(draw, (left, y + row * label_line), text, font, WARN_FG)


def render_picture(job: ImageJob, index: int, thumbs: Sequence[Image.Image] = ()) -> Image.Image:
    """The synthetic answer: banners that survive a centre-crop, prompt, parameters and input thumbnails."""
    w, h = job.geometry.pixels
    unit = min(w, h)
    top, bottom = max(28, round(unit * 0.09)), max(20, round(unit * 0.055))
    margin = max(6, round(unit * 0.025))
    panel = (margin, top + margin, w - margin, h - bottom - margin)
    img = _background((w, h), job.prompt, index, panel)
    draw = ImageDraw.Draw(img)
    _banner(draw, (0, 0, w, top), BANNER)
    _banner(draw, (0, h - bottom, w, h), BANNER)
    watermark = _fitted_font(WATERMARK, unit * 0.16, (panel[2] - panel[0]) * 0.9)
    centre = ((panel[0] + panel[2]) / 2, (panel[1] + panel[3]) / 2)
    draw.text(centre, WATERMARK, font=watermark, fill=WATERMARK_FG, anchor="mm")  # survives a centre-crop
    x, y = panel[0] + margin, panel[1] + margin
    width = panel[2] - panel[0] - 2 * margin
    limit = panel[3] - margin

    title_font = _fitted_font(PANEL_TITLE, unit * 0.06, width)
    _draw_text(draw, (x, y), PANEL_TITLE, title_font, TITLE_FG)
    y += _line_height(title_font)
    params = (
        f"route: {job.route}   model: {job.model}",
        f"aspect ratio {job.geometry.ratio}   tier {job.geometry.tier}   {w}x{h} px",
        f"picture {index + 1}/{job.count}   image-gen-local offline emulator of Antigravity Tools",
    )
    for line in params:
        _draw_text(draw, (x, y), line, _fitted_font(line, unit * 0.03, width), PARAM_FG)
        y += _line_height(_font(unit * 0.03))
    y += round(unit * 0.02)

    if job.inputs:
        thumbs_top = limit - round((limit - y) * 0.45)
        _draw_inputs(img, (x, thumbs_top, x + width, limit), job.inputs, thumbs, unit)
        limit = thumbs_top - margin

    caption_font = _fitted_font(PROMPT_CAPTION, unit * 0.026, width)
    _draw_text(draw, (x, y), PROMPT_CAPTION, caption_font, PARAM_FG)
    y += _line_height(caption_font)
    prompt_font = _font(unit * 0.04)
    line_height = _line_height(prompt_font)
    lines = _wrap(job.prompt or "(empty prompt)", prompt_font, width)
    room = max(0, (limit - y) // line_height)
    if len(lines) > room:
        lines = lines[:room]
        if lines:
            lines[-1] = lines[-1][: max(0, len(lines[-1]) - 4)] + " ..."
    for line in lines:
        _draw_text(draw, (x, y), line, prompt_font, PROMPT_FG)
        y += line_height
    return img


def encode_picture(img: Image.Image, image_format: str) -> tuple[bytes, str]:
    """Encode fast (PNG level 1) and label the file itself as synthetic, in PNG text chunks or EXIF."""
    buffer = io.BytesIO()
    if image_format == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", PNG_SOFTWARE)
        info.add_text("Comment", PNG_COMMENT)
        img.save(buffer, "PNG", pnginfo=info, compress_level=1)
    else:
        exif = Image.Exif()
        exif[0x0131] = PNG_SOFTWARE  # Software
        exif[0x010E] = PNG_COMMENT  # ImageDescription
        if image_format == "jpeg":
            img.save(buffer, "JPEG", quality=90, exif=exif.tobytes(), comment=PNG_COMMENT)
        else:
            img.save(buffer, "WEBP", quality=90, method=0, exif=exif.tobytes())
    return buffer.getvalue(), format_mime(image_format)


def render_job(job: ImageJob, image_format: str) -> list[tuple[bytes, str]] | None:
    """Every picture of a job, encoded; None when an input image cannot be decoded."""
    thumbs = [decode_thumbnail(item.data) for item in job.inputs]
    decoded = [thumb for thumb in thumbs if thumb is not None]
    if len(decoded) != len(thumbs):
        return None
    return [encode_picture(render_picture(job, i, decoded), image_format) for i in range(job.count)]


def images_response(
    pictures: Sequence[tuple[bytes, str]], response_format: str, created: int
) -> dict[str, Any]:
    items = []
    for data, mime in pictures:
        b64 = base64.b64encode(data).decode("ascii")
        items.append({"url": f"data:{mime};base64,{b64}"} if response_format == "url" else {"b64_json": b64})
    return {"created": created, "data": items}


# ---------------------------------------------------------------------------------------------------- HTTP


@dataclass
class _State:
    """Shared by the handler threads of one emulator."""

    config: EmulatorConfig
    requests: list[RecordedRequest]
    lock: threading.Lock = field(default_factory=threading.Lock)
    scripted: deque[Reply] = field(default_factory=deque)

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def push(self, replies: Sequence[Reply]) -> None:
        with self.lock:
            self.scripted.extend(replies)

    def pop(self) -> Reply | None:
        with self.lock:
            return self.scripted.popleft() if self.scripted else None


class _BodyError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Skip HTTPServer's reverse DNS lookup of the host, which can stall for seconds."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up (timeouts, Ctrl-C, stop()) is normal here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Drop kept-alive connections, or their threads would keep answering after stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the openai SDK keeps connections alive
    server_version = "image-gen-local-emulator"
    sys_version = ""
    timeout = 300.0  # idle keep-alive connections are dropped after this
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by the one line per request written in `_dispatch` when verbose."""

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.state.config.verbose:
            sys.stderr.write(f"[emulator] {self.address_string()} {format % args}\n")

    def _dispatch(self) -> None:
        state = self.server.state
        started = time.monotonic()
        route, methods = route_for(self.path)
        record = RecordedRequest(self.command, self.path, route, self._authorized(state.config.api_key))
        try:
            reply = self._answer(state, record, route, methods, self._read_body())
        except _BodyError as exc:
            self.close_connection = True
            reply = exc.reply
        except Exception as exc:  # a bug in the emulator: say so instead of dropping the connection
            traceback.print_exc(file=sys.stderr)
            reply = plain(500, f"image-gen-local emulator internal error: {exc!r}")
        record.status = reply.status
        state.record(record)
        if reply.delay > 0:
            time.sleep(reply.delay)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if state.config.verbose:
            fields = [route, "scripted" if record.scripted else ""] + [
                f"{name}={value}"
                for name, value in (
                    ("model", record.model),
                    ("ratio", record.aspect_ratio),
                    ("image_size", record.image_size),
                )
                if value is not None
            ]
            sys.stderr.write(
                f"[emulator] {self.command} {self.path} -> {reply.status} "
                f"{' '.join(f for f in fields if f)} {time.monotonic() - started:.2f}s\n"
            )

    def _send(self, reply: Reply) -> None:
        payload = reply.payload
        names = {name.lower() for name in reply.headers}
        self.send_response(reply.status)
        self.send_header(EMULATOR_HEADER, EMULATOR_HEADER_VALUE)
        if reply.content_type and "content-type" not in names:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(name, value)
        if self.close_connection and "connection" not in names:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def _authorized(self, api_key: str | None) -> bool:
        """auth.rs: the first of Authorization / x-api-key / x-goog-api-key present is the key presented."""
        if api_key is None:
            return True
        for header in ("Authorization", "x-api-key", "x-goog-api-key"):
            value = self.headers.get(header)
            if value is not None:
                presented = value.removeprefix("Bearer ") if header == "Authorization" else value
                return bool(api_key) and hmac.compare_digest(presented.encode(), api_key.encode())
        return False

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise _BodyError(plain(400, "Invalid Content-Length"))
        length = int(length_text)
        if length > MAX_BODY:
            raise _BodyError(plain(413, "length limit exceeded"))
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(plain(400, "Invalid chunked body")) from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise _BodyError(plain(413, "length limit exceeded"))
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _answer(
        self, state: _State, record: RecordedRequest, route: str, methods: tuple[str, ...], raw: bytes
    ) -> Reply:
        config = state.config
        content_type = self.headers.get("Content-Type")
        if self.command == "POST" and route in IMAGE_ROUTES:
            scripted = state.pop()
            if scripted is not None:
                record.scripted = True
                record.body, record.files = _peek(route, content_type, raw)
                return scripted
        if route != "health" and not record.authorized:
            return empty(401)
        if route == "other":
            return empty(404)
        if self.command not in methods:
            return empty(405)
        if route == "health":
            return json_reply(200, {"status": "ok", "emulator": True, "synthetic": True})
        if route == "models":
            return json_reply(200, model_list(config.models))
        plan: ImageJob | TextJob | Reply
        if route == "edits":
            parts = parse_multipart(content_type, raw)
            if isinstance(parts, Reply):
                return parts
            form = split_edit_form(parts)
            record.body, record.files = dict(form.texts), [_file_row(item) for item in form.images]
            plan = plan_edit(form, config.models)
        else:
            parsed, error = parse_json_body(content_type, raw)
            if error is not None:
                return error
            record.body = parsed if isinstance(parsed, dict) else {}
            plan = (
                plan_generation(parsed, config.models)
                if route == "generations"
                else plan_chat(parsed, config.models)
            )
        return _execute(plan, record, config)


def _peek(route: str, content_type: str | None, raw: bytes) -> tuple[dict[str, Any], list[Any]]:
    """Best-effort record of a request answered from the script."""
    if route == "edits":
        parts = parse_multipart(content_type, raw)
        if isinstance(parts, Reply):
            return {}, []
        form = split_edit_form(parts)
        return dict(form.texts), [_file_row(item) for item in form.images]
    parsed, _ = parse_json_body(content_type, raw)
    return (parsed if isinstance(parsed, dict) else {}), []


def _file_row(item: InputImage) -> tuple[str, str, int, str | None]:
    return (item.label, item.declared_mime, len(item.data), item.sniffed)


def _chat_reply(model: str, content: str, stream: bool) -> Reply:
    created, completion_id = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if stream:
        return Reply(
            200,
            chat_stream(model, content, created, completion_id),
            headers={"Cache-Control": "no-cache"},
            content_type="text/event-stream",
        )
    return json_reply(200, chat_completion(model, content, created, completion_id))


def _execute(plan: ImageJob | TextJob | Reply, record: RecordedRequest, config: EmulatorConfig) -> Reply:
    """Answer a plan; `config.latency` stands for the upstream call, so only what would reach it waits."""
    if isinstance(plan, Reply):
        return plan
    if isinstance(plan, TextJob):
        record.model, record.effective_prompt = plan.model, plan.prompt
        reply = _chat_reply(plan.model, TEXT_REPLY, plan.stream)
        reply.delay = config.latency
        return reply
    job = plan
    record.model, record.aspect_ratio = job.model, job.geometry.ratio
    record.image_size, record.effective_prompt = job.geometry.image_size, job.prompt
    record.files = [_file_row(item) for item in job.inputs]
    if job.error is not None:
        return replace(job.error, delay=config.latency if job.upstream_error else 0.0)
    pictures = render_job(job, config.image_format)
    if pictures is None:
        return replace(_upstream_image_error(job.route), delay=config.latency)
    if job.route == "chat":
        data, mime = pictures[0]
        reply = _chat_reply(
            job.model, markdown_image(mime, base64.b64encode(data).decode("ascii")), job.stream
        )
    else:
        reply = json_reply(200, images_response(pictures, job.response_format, int(time.time())))
        reply.headers["X-Account-Email"] = "emulator@localhost"
        if job.route == "edits":
            reply.headers["X-Mapped-Model"] = job.model
    reply.delay = config.latency
    return reply


# ------------------------------------------------------------------------------------------------- public


class Emulator:
    """The emulator in a daemon thread; `port=0` picks a free port (read it back from `base_url`)."""

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self._state = _State(self.config, self.requests)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        if self._server is None:
            server = _Server((self.host, self.port), self._state)
            self.port = int(server.server_address[1])
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="image-gen-emulator",
                daemon=True,
            )
            self._thread.start()
            self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self.port == 0:
            raise RuntimeError("the emulator has no port yet; call start() first")
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next POSTs to the image routes, ahead of auth and normal handling."""
        self._state.push(replies)


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8045) -> None:
    """Blocking; prints to stderr: 'image-gen-local emulator on http://HOST:PORT/v1 — pictures are SYNTHETIC
    (no model is called); Ctrl-C to stop'. Ctrl-C stops cleanly (no traceback)."""
    emulator = Emulator(config, host, port).start()
    print(
        f"image-gen-local emulator on {emulator.base_url} — pictures are SYNTHETIC (no model is called); "
        "Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m image_gen_local.emulator",
        description="Offline emulator of Antigravity Tools; its pictures are synthetic.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8045)
    parser.add_argument(
        "--api-key", default=None, help="require this key, like the real server in Docker mode"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each image answer")
    parser.add_argument(
        "--models", default=f"{PRO_IMAGE},{FLASH_IMAGE}", help="comma-separated models with quota"
    )
    parser.add_argument("--format", choices=[name for name, _, _ in FORMATS], default="png")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    serve(EmulatorConfig(args.api_key, args.latency, models, args.format, args.verbose), args.host, args.port)


if __name__ == "__main__":
    _main()
