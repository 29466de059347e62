"""Find the picture in any answer shape the servers send, and judge the answer: a picture or a failure.

Antigravity puts chat pictures in markdown inside `message.content` (drafts first, final last),
CLIProxyAPI in `message.images[]`, the images API in `data[].b64_json` or `data[].url` (a data URL or an
http(s) link). Pure functions over the answer's bytes; `read_answer` is given the one thing it cannot do
itself, downloading an http(s) picture.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .failures import Failure, Kind, classify, looks_like_html

if TYPE_CHECKING:
    from .images import Picture
    from .transport import HttpAnswer

_MARKDOWN_IMAGE = re.compile(
    r"!\[[^\]]*\]\(\s*(data:image/[\w.+-]+;base64,[A-Za-z0-9+/=\s]+?|https?://[^\s)]+)\s*\)"
)
_SAFETY_REASONS = {
    "content_filter",
    "safety",
    "image_safety",
    "prohibited_content",
    "recitation",
    "blocklist",
    "spii",
}


@dataclass
class Answer:
    """What an answer carried: picture sources (in order, the final one last) and any text."""

    sources: list[str] = field(default_factory=list)  # data: URLs, http(s) URLs, or bare base64
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None  # an error object inside a 200 answer

    @property
    def refused(self) -> bool:
        return (self.finish_reason or "").lower() in _SAFETY_REASONS


class AnswerError(ValueError):
    """The answer is not JSON, or not a shape we know."""


class UnsafeSource(ValueError):
    """The answer points at something we never follow (file:, ftp:, a local path)."""


def parse_json(body: bytes | bytearray | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        head = (body[:80] if isinstance(body, str) else bytes(body[:80]).decode("utf-8", "replace")).strip()
        if head.lower().startswith(("<!doctype", "<html")):
            raise AnswerError("the server answered with an HTML page, not JSON") from None
        if not body.strip():
            raise AnswerError("the server answered with an empty body") from None
        raise AnswerError(f"the server's answer is not valid JSON ({exc.__class__.__name__})") from None


def parse_answer(body: bytes | bytearray | str, *, streamed: bool = False) -> Answer:
    """Parse an images-API or chat answer (or an SSE stream of chat chunks)."""
    text = body if isinstance(body, str) else bytes(body).decode("utf-8", "replace")
    if streamed or text[:64].lstrip().startswith("data:"):
        return _parse_sse(text)
    data = parse_json(text)
    if not isinstance(data, dict):
        raise AnswerError("the server's answer is not a JSON object")
    answer = Answer()
    _collect(data, answer)
    return answer


def _collect(data: dict[str, Any], answer: Answer) -> None:
    error = data.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        answer.error = str(message or error)
    items = data.get("data")
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("b64_json"), str) and item["b64_json"]:
                answer.sources.append(item["b64_json"])  # kept as is: a 4K picture is ~40 MB of text
            elif isinstance(item.get("url"), str) and item["url"]:
                answer.sources.append(item["url"])
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        if isinstance(message, dict):
            _collect_message(message, answer)
        if choice.get("finish_reason"):
            answer.finish_reason = str(choice["finish_reason"])


def _collect_message(message: dict[str, Any], answer: Answer) -> None:
    content = message.get("content")
    if isinstance(content, str):
        answer.text += content
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                answer.text += part["text"]
            url = _part_url(part)
            if url:
                answer.sources.append(url)
    for image in message.get("images") or []:
        url = _part_url(image) if isinstance(image, dict) else None
        if url:
            answer.sources.append(url)
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        answer.text += refusal
        answer.finish_reason = answer.finish_reason or "content_filter"


def _part_url(part: dict[str, Any]) -> str | None:
    """An image URL from a content part: {image_url: {url}}, {image_url: "..."}, or inline base64."""
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if isinstance(url, str):
        return url
    for key in ("b64_json", "image_base64"):
        value = part.get(key)
        if isinstance(value, str):
            return value
    return None


def _parse_sse(body: str) -> Answer:
    answer = Answer()
    for raw in body.split("\n"):
        line = raw.strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == "[DONE]":
            continue
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise AnswerError("the server's event stream holds a line that is not JSON") from None
        if isinstance(chunk, dict):
            _collect(chunk, answer)
    return answer


def markdown_sources(text: str) -> list[str]:
    """Picture URLs in markdown image syntax, in order of appearance."""
    return [m.group(1) for m in _MARKDOWN_IMAGE.finditer(text)]


def all_sources(answer: Answer) -> list[str]:
    """Every picture source in the answer: structured ones, then those in the markdown text."""
    return answer.sources + markdown_sources(answer.text)


def decode_source(source: str) -> bytes | None:
    """The bytes of an inline source (a `data:` URL or bare base64), or None for an http(s) URL to download.

    A source with no scheme is bare base64 (the alphabet has no ':'). Raises UnsafeSource for any scheme
    but http(s) and data (file:, ftp:, ...), and ValueError for base64 that does not decode.
    """
    head = source[:64]
    if ":" not in head:
        return _b64decode(source)
    scheme = head.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        return None
    if scheme != "data":
        raise UnsafeSource(f"the server pointed at a {scheme!r} URL; only http(s) and data URLs are followed")
    comma = source.find(",")
    if comma < 0 or ";base64" not in source[:comma]:
        raise ValueError("the server sent a data URL that is not base64")
    return _b64decode(source[comma + 1 :])


def _b64decode(text: str) -> bytes:
    """Decode without extra copies of multi-megabyte text; tolerate line breaks inside it."""
    try:
        if sys.version_info >= (3, 11):
            return binascii.a2b_base64(text, strict_mode=True)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the server sent base64 that does not decode") from None


def read_answer(answer: HttpAnswer, download: Callable[[str], bytes]) -> Picture | Failure:
    """Turn an HTTP answer into a verified picture or a classified failure.

    Each stage is released as soon as the next exists (raw body, parsed answer, base64 text), so a 4K
    answer is held about twice at most, not five times.
    """
    from . import images

    if answer.status != 200:
        return classify(answer.status, answer.text, answer.headers)
    head = bytes(answer.body[:300]).decode("utf-8", "replace")
    if "html" in answer.content_type or looks_like_html(head):
        return Failure(Kind.NOT_IMAGE_API, "the server answered with an HTML page, not the image API", 200)
    try:
        text = answer.body.decode("utf-8")
    except UnicodeDecodeError:
        return Failure(Kind.BAD_ANSWER, "the server's answer is not UTF-8 text", 200)
    finally:
        answer.body = b""
    try:
        parsed = parse_answer(text, streamed="event-stream" in answer.content_type)
    except AnswerError as exc:
        return Failure(Kind.BAD_ANSWER, str(exc), 200)
    del text
    if parsed.error:
        return classify(200, parsed.error)
    sources = all_sources(parsed)
    if not sources:
        return _no_picture(parsed)
    source = sources[-1]  # chat answers may carry draft "thought" pictures first
    del sources, parsed
    try:
        data = decode_source(source)
        if data is None:
            data = download(source)
        del source
        return images.read_picture(data)
    except (UnsafeSource, images.PictureRefused) as exc:
        return Failure(Kind.HOSTILE, str(exc), 200)
    except ValueError as exc:
        return Failure(Kind.BAD_ANSWER, str(exc), 200)


def _no_picture(parsed: Answer) -> Failure:
    words = " ".join(parsed.text.split())[:160]
    if parsed.refused:
        detail = f"the server refused ({parsed.finish_reason})" + (f": {words}" if words else "")
        return Failure(Kind.SAFETY, detail, 200)
    detail = f"the server answered without a picture: {words!r}" if words else "the answer held no picture"
    return Failure(Kind.NO_IMAGE, detail, 200)
