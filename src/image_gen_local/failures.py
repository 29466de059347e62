"""What a failed answer means: retry, switch model, switch route, or stop with an exit code.

The real proxy answers errors in plain text, empty bodies or JSON, and picks its status by substring
matching, so we classify on the status *and* the words. Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, quote_plus

from .errors import ExitCode
from .upstream import (
    ENTITY_NOT_FOUND,
    GATEWAY_UPSTREAM_AUTH,
    IMAGE_READ_ERROR,
    INPUT_UNREADABLE,
    INVALID_MODEL,
    KEY_WORDS,
    NO_DB_CONNECTION,
    NO_IMAGES,
    NO_QUOTA,
    NOT_ON_IMAGES_API,
    PROXY_DISABLED,
    TOKEN_REJECTED,
    UPSTREAM_UNREACHABLE,
    VALIDATION_REQUIRED,
)


class Kind(str, Enum):
    RATE_LIMIT = "rate_limit"  # 429, quota, all accounts exhausted
    CAPACITY = "capacity"  # 503 capacity, 5xx, resets
    NO_IMAGE = "no_image"  # "No images generated", data: [], text only
    SAFETY = "safety"  # an explicit safety refusal
    MODEL = "model_unavailable"  # unknown model or no quota for it: try the other tier
    ROUTE = "route_missing"  # this API is not offered: try chat
    AUTH = "auth"  # 401, rejected token, a gateway refusing the key
    GATEWAY_KEY = "gateway_key"  # the gateway's own key for its upstream was refused (the user's was fine)
    UNKNOWN_MODEL = "unknown_model"  # a gateway does not know the model name at all
    UPSTREAM_DOWN = "upstream_down"  # the gateway answers, but cannot reach the server behind it
    ACCOUNT = "account_check"  # 403 VALIDATION_REQUIRED
    DISABLED = "proxy_disabled"  # the proxy service is stopped in the app
    UNREACHABLE = "unreachable"  # refused, DNS
    NOT_IMAGE_API = "not_image_api"  # an HTML page or something that is not this API
    TIMEOUT = "timeout"  # no answer within the deadline
    TOO_LARGE = "too_large"  # 413: our upload is too big for the server
    INPUT_REJECTED = "input_rejected"  # the server could not read an input picture
    BAD_REQUEST = "bad_request"  # 4xx we cannot fix by retrying
    BAD_ANSWER = "bad_answer"  # a picture that is not a picture, truncated JSON
    HOSTILE = "hostile_answer"  # a decompression bomb, an oversized body, a file: URL: refused, not retried


@dataclass(frozen=True)
class Failure:
    kind: Kind
    detail: str  # what happened, in the server's words where it said any
    status: int | None = None
    retry_after: float | None = None  # seconds the server asked us to wait

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self.kind]

    @property
    def fix(self) -> str:
        return _FIX[self.kind]

    def line(self) -> str:
        """One line: what happened, then how to fix it."""
        return f"{self.detail.rstrip('. ')}; {self.fix}"


# UPSTREAM_DOWN is retried for a few seconds only (retry.decide): a restarting upstream comes back quickly.
_RETRYABLE = {
    Kind.RATE_LIMIT,
    Kind.CAPACITY,
    Kind.NO_IMAGE,
    Kind.BAD_ANSWER,
    Kind.TIMEOUT,
    Kind.UPSTREAM_DOWN,
}

_EXIT: dict[Kind, ExitCode] = {
    Kind.RATE_LIMIT: ExitCode.QUOTA,
    Kind.CAPACITY: ExitCode.QUOTA,
    Kind.NO_IMAGE: ExitCode.NO_IMAGE,
    Kind.SAFETY: ExitCode.NO_IMAGE,
    Kind.MODEL: ExitCode.QUOTA,
    Kind.ROUTE: ExitCode.UNREACHABLE,
    Kind.AUTH: ExitCode.AUTH,
    Kind.GATEWAY_KEY: ExitCode.AUTH,
    Kind.UNKNOWN_MODEL: ExitCode.USAGE,
    Kind.UPSTREAM_DOWN: ExitCode.UNREACHABLE,
    Kind.ACCOUNT: ExitCode.AUTH,
    Kind.DISABLED: ExitCode.UNREACHABLE,
    Kind.UNREACHABLE: ExitCode.UNREACHABLE,
    Kind.NOT_IMAGE_API: ExitCode.UNREACHABLE,
    Kind.TIMEOUT: ExitCode.DEADLINE,
    Kind.TOO_LARGE: ExitCode.BAD_INPUT,
    Kind.INPUT_REJECTED: ExitCode.BAD_INPUT,
    Kind.BAD_REQUEST: ExitCode.UNREACHABLE,
    Kind.BAD_ANSWER: ExitCode.NO_IMAGE,
    Kind.HOSTILE: ExitCode.NO_IMAGE,
}

_FIX: dict[Kind, str] = {
    Kind.RATE_LIMIT: "the server's quota or rate limit is exhausted: wait a few minutes, or raise --timeout",
    Kind.CAPACITY: "the server or its upstream is overloaded: try again later, or raise --timeout",
    Kind.NO_IMAGE: "the model returned no picture (often a silent safety block): rephrase the prompt",
    Kind.SAFETY: "the model refused for safety reasons: rephrase the prompt",
    Kind.MODEL: "pick another model with --model, or check the proxy's accounts have image quota",
    Kind.ROUTE: "the server offers no image API here: check --base-url, or try --route chat",
    Kind.AUTH: "set the proxy's API key with --api-key or IMAGE_GEN_API_KEY",
    Kind.GATEWAY_KEY: (
        "your key was accepted, but the gateway's own key for the server behind it was refused: "
        "fix the api_key in the gateway's configuration"
    ),
    Kind.UNKNOWN_MODEL: "pick a model the server lists with --model; `image-gen doctor` lists them",
    Kind.UPSTREAM_DOWN: (
        "start the server behind the gateway, or fix the gateway's api_base for this model; "
        "`image-gen doctor` checks the gateway"
    ),
    Kind.ACCOUNT: "open the proxy's Accounts page and complete the Google account verification in a browser",
    Kind.DISABLED: "start the proxy service in Antigravity Tools (API Proxy page)",
    Kind.UNREACHABLE: "start the proxy (Antigravity Tools) or fix --base-url",
    Kind.NOT_IMAGE_API: "this address is not an OpenAI-compatible image API: check --base-url",
    Kind.TIMEOUT: "the server is slow (4K can take minutes): raise --timeout",
    Kind.TOO_LARGE: "send fewer or smaller --image files",
    Kind.INPUT_REJECTED: "the server could not read an --image file: convert it to PNG or JPEG and retry",
    Kind.BAD_REQUEST: "the server refused our request as malformed: check --base-url is an OpenAI-compatible "
    "image server (if it is, please report it)",
    Kind.BAD_ANSWER: "the server sent a broken answer: try again",
    Kind.HOSTILE: "the answer was refused for safety; check what is listening at --base-url",
}

MAX_DETAIL = 240
BINARY_SHARE = 4  # more than one character in this many a control character: binary data, not words
_RETRY_DELAY = re.compile(r'"(?:retryDelay|quotaResetDelay)"\s*:\s*"([\d.]+)\s*(ms|s)"')
_RESET_AFTER = re.compile(r"(?:reset after|wait)\s+([\d.]+)\s*(ms|s)\b", re.IGNORECASE)
_MIN_DERIVED = 6  # encoded forms of very short keys would match ordinary text: only the raw form is scrubbed


class Redactor:
    """Removes one secret from text in every form a server may echo it: raw, percent-encoded, base64 (any
    alignment, standard and URL-safe), JSON-escaped. Applied to a server's words before they are trimmed."""

    def __init__(self, secret: str | None) -> None:
        forms = {secret} if secret else set()
        if secret:
            forms |= {f for f in _encoded_forms(secret) if len(f) >= _MIN_DERIVED}
        ordered = sorted(forms, key=len, reverse=True)  # longest first: a form never leaves part of another
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern else text


def _encoded_forms(secret: str) -> set[str]:
    raw = secret.encode("utf-8")
    forms = {quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    forms |= {quote(secret, safe="").lower(), json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms.add("".join(f"\\u{ord(c):04x}" for c in secret))
    for pad in range(3):  # inside a longer base64 text the key can start at any of three byte offsets
        encoded = base64.b64encode(b"\0" * pad + raw + b"\0" * 2).decode()
        start = (pad * 4 + 2) // 3  # skip characters that mix in the bytes before the key
        stable = encoded[start : (pad + len(raw)) * 4 // 3]
        forms |= {stable, stable.replace("+", "-").replace("/", "_")}
    return {f for f in forms if f}


def printable(text: str) -> str:
    """Control characters and terminal escape sequences made visible (`\\x1b`), never acted on."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escaped(c) for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if unicodedata.category(char) in ("Zs",):
        return " "
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def server_words(body: str, limit: int = MAX_DETAIL) -> str:
    """The server's own message, on one line and trimmed: a JSON error's words, plain text, or nothing.

    The body must already be free of the key (`Redactor`); control characters are made visible here.
    """
    text = json_error(body) or body.strip()
    if looks_like_html(text):
        return "an HTML page"
    if _binary(text):
        return f"{len(body)} characters of binary data, not words"
    text = printable(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _binary(text: str) -> bool:
    """Mostly control characters (a decompressed bomb, a picture's bytes): nothing to quote to a user."""
    sample = text[: MAX_DETAIL * 4]
    controls = sum(1 for c in sample if not c.isprintable() and not c.isspace())
    return controls * BINARY_SHARE > len(sample) > 0


def json_error(body: str) -> str | None:
    """The words of a JSON error object: `error.message` (with its `type` when that says more), `error`
    as a string, or a top-level `message`; None when the body is not such an object."""
    text = body.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    err = data.get("error", data)
    if isinstance(err, str):
        return err.strip() or None
    if not isinstance(err, dict):
        return None
    message = err.get("message")
    words = message.strip() if isinstance(message, str) else ""
    kind = next((str(err[k]) for k in ("type", "code") if isinstance(err.get(k), str) and err[k]), "")
    if kind and kind.lower() not in words.lower() and not kind.isdigit():
        words = f"{words} ({kind})" if words else kind
    return words or None


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith(("<!doctype html", "<html")) or ("<head" in head and "<" in head[:1])


def retry_delay(body: str, headers: Mapping[str, str]) -> float | None:
    """How long the server asked us to wait: Retry-After, or Google's retryDelay inside the text."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value:
        value = value.strip()
        try:
            number = float(value)
            return max(0.0, number) if math.isfinite(number) else None
        except ValueError:
            try:
                from datetime import datetime, timezone
                from email.utils import parsedate_to_datetime  # rare (an HTTP date), and slow to import

                return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                pass
    for pattern in (_RETRY_DELAY, _RESET_AFTER):
        match = pattern.search(body)
        if match:
            try:
                number = float(match.group(1))
            except ValueError:  # "1.2.3s"
                continue
            if math.isfinite(number):
                return number / 1000 if match.group(2) == "ms" else number
    return None


def classify(status: int, body: str, headers: Mapping[str, str] | None = None) -> Failure:
    """Classify a non-success HTTP answer."""
    headers = headers or {}
    words = server_words(body)
    said = f"server answered {status}" + (f": {words}" if words else " with an empty body")
    lower = body.lower()
    delay = retry_delay(body, headers)

    if VALIDATION_REQUIRED.lower() in lower:
        return Failure(Kind.ACCOUNT, f"{said} (the Google account needs verification)", status)
    if PROXY_DISABLED.lower() in lower:
        return Failure(Kind.DISABLED, said, status)
    if GATEWAY_UPSTREAM_AUTH.lower() in lower:
        return Failure(Kind.GATEWAY_KEY, f"{said} (the gateway's own key for its upstream)", status)
    if _key_refused(status, lower):
        master = NO_DB_CONNECTION in lower
        why = " (a LiteLLM proxy without a database takes only its master key)" if master else ""
        return Failure(Kind.AUTH, said + why, status)
    if INVALID_MODEL.lower() in lower:
        return Failure(Kind.UNKNOWN_MODEL, said, status)
    if status >= 500 and any(w.lower() in lower for w in UPSTREAM_UNREACHABLE):
        return Failure(Kind.UPSTREAM_DOWN, f"the gateway cannot reach its upstream ({said})", status)
    if NO_QUOTA.lower() in lower:
        return Failure(Kind.MODEL, said, status)
    if NO_IMAGES.lower() in lower:
        return Failure(Kind.NO_IMAGE, said, status)
    if status == 429:
        return Failure(Kind.RATE_LIMIT, said, status, delay)
    if status == 413:
        return Failure(Kind.TOO_LARGE, said, status)
    if status in (404, 400) and _model_missing(lower):
        return Failure(Kind.MODEL, said, status)
    if status in (404, 405) or (status == 400 and NOT_ON_IMAGES_API in lower):
        return Failure(Kind.ROUTE, said, status)
    if status == 403:
        return Failure(Kind.AUTH, said, status)
    if status >= 500:
        return Failure(Kind.CAPACITY, said, status, delay)
    if status == 200 and looks_like_html(body):
        return Failure(Kind.NOT_IMAGE_API, f"server answered {status} with an HTML page", status)
    if INPUT_UNREADABLE.lower() in lower or IMAGE_READ_ERROR.lower() in lower:
        return Failure(Kind.INPUT_REJECTED, said, status)
    return Failure(Kind.BAD_REQUEST, said, status)


def _key_refused(status: int, lower: str) -> bool:
    """401; Antigravity's rejected token (403); a gateway's words for a key it does not know (any status)."""
    if status == 401 or (status == 403 and TOKEN_REJECTED in lower):
        return True
    return status < 500 and (NO_DB_CONNECTION in lower or any(w in lower for w in KEY_WORDS))


def _model_missing(lower: str) -> bool:
    return ENTITY_NOT_FOUND.lower() in lower or (
        "model" in lower
        and any(w in lower for w in ("not found", "does not exist", "unknown", "not supported"))
        and NOT_ON_IMAGES_API not in lower
    )
