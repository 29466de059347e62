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

from .failures import Failure, Kind, classify, looks_like_html, printable, server_words

if TYPE_CHECKING:
    from .images import Picture
    from .transport import HttpAnswer

# What one answer may hold, by the tier asked for: a real 1K answer is ~2 MB of base64, 4K ~40 MB. The caps
# leave room for a server that ignores the tier (a 2K picture for a 1K request) and keep the peak memory of
# the worst answer at 1K (a body at the cap, parsed and decoded) well under 300 MB.
_CAPS = {"1K": (32, 16_000_000), "2K": (64, 32_000_000), "4K": (128, 64_000_000)}
# JSON structure we parse at most: an image answer has a few dozen containers and separators. Counted
# before parsing (linear, in C), so a body of a million empty arrays cannot cost gigabytes once parsed.
MAX_JSON_TOKENS = 200_000
_DATA_URL_HEAD = re.compile(r"data:image/[\w.+-]+;base64,")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")
_SPACES = re.compile(r"\s*")
_NON_SPACES = re.compile(r"\S*")
# A 200 answer's error object names its kind in `code` (a number) or `status` (Google's words).
_STATUS_WORDS = {
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "INTERNAL": 500,
    "DEADLINE_EXCEEDED": 504,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
}
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
    parts: list[str] = field(default_factory=list)  # the text, in pieces (joined once: linear)
    finish_reason: str | None = None
    error: str | None = None  # an error object inside a 200 answer
    error_status: int | None = None  # ... and the HTTP status its code or status word stands for

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def refused(self) -> bool:
        return (self.finish_reason or "").lower() in _SAFETY_REASONS


class AnswerError(ValueError):
    """The answer is not JSON, or not a shape we know."""


class UnsafeSource(ValueError):
    """The answer points at something we never follow (file:, ftp:, a local path)."""


def answer_cap(tier: str) -> int:
    """The most bytes an answer for `tier` may have (decoded), whatever its status."""
    return _CAPS.get(tier, _CAPS["4K"])[0] * 1024 * 1024


def answer_pixels(tier: str) -> int:
    """The most pixels an answer picture for `tier` may declare before it is refused undecoded."""
    return _CAPS.get(tier, _CAPS["4K"])[1]


def _json_tokens(body: bytes | bytearray | str) -> int:
    if isinstance(body, str):
        return body.count("[") + body.count("{") + body.count(",")
    return body.count(b"[") + body.count(b"{") + body.count(b",")


def parse_json(body: bytes | bytearray | str) -> Any:
    """JSON, or AnswerError: never a RecursionError (deep nesting) or gigabytes (a million tiny values)."""
    if _json_tokens(body) > MAX_JSON_TOKENS:
        raise AnswerError(f"the server's answer has more than {MAX_JSON_TOKENS} JSON values; refused")
    try:
        return json.loads(body)
    except RecursionError:
        raise AnswerError("the server's answer is JSON nested too deeply to read") from None
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


def _items(value: Any) -> list[Any]:
    """A JSON array, or nothing: a server may put any type where a list belongs."""
    return value if isinstance(value, list) else []


def _collect(data: dict[str, Any], answer: Answer) -> None:
    error = data.get("error")
    if error:
        _collect_error(error, answer)
    for item in _items(data.get("data")):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            answer.sources.append(item["b64_json"])  # kept as is: a 4K picture is ~40 MB of text
        elif isinstance(item.get("url"), str) and item["url"]:
            answer.sources.append(item["url"])
    for choice in _items(data.get("choices")):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        if isinstance(message, dict):
            _collect_message(message, answer)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            answer.finish_reason = reason


def _collect_error(error: Any, answer: Answer) -> None:
    """An error object in a 200 answer: its words, and the status its `code` or `status` stands for."""
    message = error.get("message") if isinstance(error, dict) else error
    answer.error = str(message or error)[:4096]
    if not isinstance(error, dict):
        return
    code, word = error.get("code"), error.get("status")
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        answer.error_status = code
    elif isinstance(code, str) and code.isdigit() and 400 <= int(code) < 600:
        answer.error_status = int(code)
    elif isinstance(word, str) and word.upper() in _STATUS_WORDS:
        answer.error_status = _STATUS_WORDS[word.upper()]
    elif isinstance(code, str) and code.upper() in _STATUS_WORDS:
        answer.error_status = _STATUS_WORDS[code.upper()]


def _collect_message(message: dict[str, Any], answer: Answer) -> None:
    content = message.get("content")
    if isinstance(content, str):
        answer.parts.append(content)
    for part in _items(content):
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            answer.parts.append(part["text"])
        url = _part_url(part)
        if url:
            answer.sources.append(url)
    for image in _items(message.get("images")):
        url = _part_url(image) if isinstance(image, dict) else None
        if url:
            answer.sources.append(url)
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        answer.parts.append(refusal)
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
    if _json_tokens(body) > MAX_JSON_TOKENS:
        raise AnswerError(f"the server's event stream has more than {MAX_JSON_TOKENS} JSON values; refused")
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
        except RecursionError:
            raise AnswerError("the server's event stream holds JSON nested too deeply to read") from None
        except ValueError:
            raise AnswerError("the server's event stream holds a line that is not JSON") from None
        if isinstance(chunk, dict):
            _collect(chunk, answer)
    return answer


def markdown_sources(text: str) -> list[str]:
    """Picture URLs in markdown image syntax `![alt](url)`, in order of appearance.

    A scan, not a regular expression: each `]` and `)` is searched for once and remembered, and a URL that
    breaks at some character lets the scan resume there, so adversarial text (`![` repeated, unclosed
    brackets, URLs that never end) costs linear time.
    """
    found: list[str] = []
    close_bracket = close_paren = -1
    at = text.find("![")
    while at >= 0:
        if close_bracket < at + 2:
            close_bracket = text.find("]", at + 2)
            if close_bracket < 0:
                break  # no later image can close its alt text either
        if not text.startswith("(", close_bracket + 1):
            at = text.find("![", close_bracket + 1)  # every "![" before this "]" shares it: skip them
            continue
        if close_paren < close_bracket + 2:
            close_paren = text.find(")", close_bracket + 2)
            if close_paren < 0:
                break
        url, resume = _picture_url(text, close_bracket + 2, close_paren)
        if url is not None:
            found.append(url)
        at = text.find("![", max(resume, at + 1))
    return found


def _picture_url(text: str, start: int, end: int) -> tuple[str | None, int]:
    """The picture URL in `text[start:end]` (between the parentheses), or None; and where scanning resumes
    (a later candidate whose URL spans the character that broke this one breaks the same way)."""
    start = _SPACES.match(text, start, end).end()  # type: ignore[union-attr]
    if text.startswith(("http://", "https://"), start, end):
        stop = _NON_SPACES.match(text, start, end).end()  # type: ignore[union-attr]
        rest = _SPACES.match(text, stop, end).end()  # type: ignore[union-attr]
        return (text[start:stop], end) if rest == end and stop - start > 8 else (None, rest)
    head = _DATA_URL_HEAD.match(text, start, end)
    if head is None:
        return None, start
    stop = _BASE64_TEXT.match(text, head.end(), end)
    if stop is None or stop.end() != end:
        return None, stop.end() if stop else head.end()
    return text[start:end].rstrip(), end


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


def read_answer(
    answer: HttpAnswer, download: Callable[[str], bytes], max_pixels: int | None = None
) -> Picture | Failure:
    """Turn an HTTP answer into a verified picture or a classified failure.

    Every word of the server's that reaches a failure passes `answer.redact` first (the key, whole).

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
        return _error_in_200(parsed, answer.redact, answer.headers)
    sources = all_sources(parsed)
    if not sources:
        return _no_picture(parsed, answer.redact)
    source = sources[-1]  # chat answers may carry draft "thought" pictures first
    del sources, parsed
    try:
        data = decode_source(source)
        if data is None:
            data = download(source)
        del source
        return images.read_picture(data, max_pixels)
    except (UnsafeSource, images.PictureRefused) as exc:
        return Failure(Kind.HOSTILE, str(exc), 200)
    except ValueError as exc:
        return Failure(Kind.BAD_ANSWER, str(exc), 200)


def _error_in_200(parsed: Answer, redact: Callable[[str], str], headers: dict[str, str]) -> Failure:
    """An error object in a 200: judged as the status it names (a 429 is retried like a 429)."""
    words = redact(parsed.error or "")
    if parsed.error_status is not None:
        return classify(parsed.error_status, words, headers)
    failure = classify(200, words)
    if failure.kind is Kind.BAD_REQUEST:  # no status we know: a broken answer, retried once
        return Failure(Kind.BAD_ANSWER, f"the server answered 200 with an error: {server_words(words)}", 200)
    return failure


def _no_picture(parsed: Answer, redact: Callable[[str], str]) -> Failure:
    words = printable(" ".join(redact(parsed.text).split())[:160])
    if parsed.refused:
        detail = f"the server refused ({parsed.finish_reason})" + (f": {words}" if words else "")
        return Failure(Kind.SAFETY, detail, 200)
    detail = f"the server answered without a picture: {words!r}" if words else "the answer held no picture"
    return Failure(Kind.NO_IMAGE, detail, 200)
