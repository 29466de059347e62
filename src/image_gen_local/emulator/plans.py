"""What a request becomes: the `ImageJob` or `TextJob` to answer, or the error `Reply` the server gives.

Antigravity Tools reads a generation's JSON, an edit's multipart form and a chat's messages each its own way
(docs/server-api.md): which fields it takes, which it ignores, which model gets which quota, and which
mistakes it refuses at once or only after asking Google. The value rules those plans use (geometry, model
names, prompt rewriting, numbers) are in `rules`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..upstream import NO_IMAGES, PRO_IMAGE, SERVER_DEFAULT_MODEL
from .intake import EditForm, ReceivedImage, sniff_format
from .replies import Reply, json_reply, plain
from .rules import (
    MARKDOWN_DATA_IMAGE,
    NOT_FOUND_MESSAGE,
    QUOTA_ERROR,
    UNPROCESSABLE,
    UNREADABLE_IMAGE,
    Geometry,
    clean_model_name,
    json_str,
    parse_form_n,
    parse_json_n,
    quota_bucket,
    resolve_geometry,
    rewrite_edit_prompt,
    rewrite_generation_prompt,
)


@dataclass(frozen=True)
class ImageJob:
    """Everything needed to answer one image request; `error` is set when the server would fail late."""

    route: str
    model: str
    geometry: Geometry
    prompt: str
    count: int = 1
    response_format: str = "b64_json"
    inputs: tuple[ReceivedImage, ...] = ()
    stream: bool = False
    error: Reply | None = None
    upstream_error: bool = False  # the real server only learns of `error` from Google, after its latency


@dataclass(frozen=True)
class TextJob:
    """A chat request for a text model: the emulator answers with a fixed notice."""

    model: str
    prompt: str
    stream: bool


def _with_error(job: ImageJob, error: Reply, upstream: bool = False) -> ImageJob:
    """Attach a late failure; `upstream` marks failures the real server only learns after calling Google."""
    return replace(job, error=error, upstream_error=upstream)


def upstream_image_error(route: str) -> Reply:
    if route == "chat":
        return json_reply(
            400, {"error": {"message": UNREADABLE_IMAGE, "type": "upstream_error", "code": 400}}
        )
    return plain(400, f"Upstream error 400: {UNREADABLE_IMAGE}")


def plan_generation(body: object, models: Sequence[str]) -> ImageJob | Reply:
    """`handle_images_generations` up to the upstream call."""
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    prompt = json_str(fields, "prompt")
    if not prompt:
        return plain(400, "Missing 'prompt' field")
    model = json_str(fields, "model")
    model = SERVER_DEFAULT_MODEL if model is None else model
    quality = json_str(fields, "quality")
    style = json_str(fields, "style")
    geometry = resolve_geometry(
        model, json_str(fields, "size"), quality, json_str(fields, "image_size", "imageSize")
    )
    cleaned = clean_model_name(model)
    job = ImageJob(
        route="generations",
        model=cleaned,
        geometry=geometry,
        prompt=rewrite_generation_prompt(prompt, quality, "vivid" if style is None else style),
        count=parse_json_n(fields.get("n")),
        response_format=json_str(fields, "response_format") or "b64_json",
    )
    if job.count == 0:
        return _with_error(job, plain(502, NO_IMAGES))
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
    model = texts.get("model", SERVER_DEFAULT_MODEL)
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
        return _with_error(job, plain(502, NO_IMAGES))
    if any(image.sniffed is None for image in job.inputs):
        return _with_error(job, upstream_image_error("edits"), upstream=True)
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


def chat_inputs(messages: Sequence[object]) -> tuple[ReceivedImage, ...]:
    """`image_url` data URLs in user messages, and markdown data images in any message's text (§5.3)."""
    found: list[ReceivedImage] = []
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
                    found.append(ReceivedImage(f"messages[{i}] image_url", mime, data, sniff_format(data)))
        for match in MARKDOWN_DATA_IMAGE.finditer(_message_text(content)):
            decoded = _data_url(match.group(1))
            if decoded is not None:
                mime, data = decoded
                found.append(ReceivedImage(f"messages[{i}] markdown", mime, data, sniff_format(data)))
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
                model, json_str(body, "size"), json_str(body, "quality"), json_str(body, "imageSize")
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
            return _with_error(job, upstream_image_error("chat"), upstream=True)
        return job
    if any(word in lower for word in ("image", "dall-e", "midjourney")):
        return plain(502, QUOTA_ERROR.format(model))
    return TextJob(model, chat_prompt(messages), stream)
