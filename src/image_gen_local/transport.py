"""HTTP through the official openai SDK, answers read raw, within one deadline and a size cap.

The SDK gives us auth, base-URL handling, multipart encoding and connection pooling. We switch off its
retries (ours know about Antigravity's plain-text errors and the whole-command deadline) and read every
answer as bytes, so any shape can be parsed. Under the SDK lies `wire`: every socket operation of a request
(its redirects and its error body included) ends by the request's deadline, and every body is decoded by us
and capped while it streams, so no server can hold us past `--timeout` or fill memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from .failures import Failure, Kind, Redactor, printable
from .protocol import Call
from .wire import BodyRefused, Budget, http_client, httpx

# Largest answer we read: a 4K PNG from Gemini is ~30 MB, ~40 MB as base64 (callers pass a cap per tier).
MAX_ANSWER_BYTES = 128 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
_CHUNK = 1024 * 1024
# The SDK's own switch for "return the raw streaming response" (what `with_streaming_response` sets).
_RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}


def _unchanged(text: str) -> str:
    return text


@dataclass
class HttpAnswer:
    status: int
    body: bytes | bytearray  # the caller may empty it once parsed: a 4K answer is ~40 MB
    headers: dict[str, str] = field(default_factory=dict)
    redact: Callable[[str], str] = _unchanged  # removes our key from the server's words

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def text(self) -> str:
        """The body as words, the key already removed: what failures and checks quote."""
        return self.redact(bytes(self.body).decode("utf-8", "replace"))


class TransportFailure(Exception):
    """No HTTP answer at all (refused, reset, timed out, too large): carries its classification."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def make_client(base_url: str, api_key: str | None, budget: Budget) -> openai.OpenAI:
    # Always pass a key explicitly so the SDK never picks up OPENAI_API_KEY and sends it to a local proxy.
    return openai.OpenAI(
        base_url=base_url, api_key=api_key or "unused", max_retries=0, http_client=http_client(budget)
    )


class Transport:
    """Sends Calls and returns HttpAnswers; every failure without an answer becomes a TransportFailure."""

    def __init__(self, base_url: str, api_key: str | None, max_answer: int = MAX_ANSWER_BYTES) -> None:
        self.base_url = base_url
        self.has_key = bool(api_key)
        self.max_answer = max_answer
        self.redact = Redactor(api_key)
        self._budget = Budget()
        self._client = make_client(base_url, api_key, self._budget)

    def _headers(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        headers: dict[str, Any] = dict(_RAW_STREAM)
        if not self.has_key:
            headers["Authorization"] = openai.Omit()
        headers.update(extra or {})
        return headers

    def send(self, call: Call, timeout: float, cap: int | None = None) -> HttpAnswer:
        options: dict[str, Any] = {"timeout": timeout}
        if call.form is not None:
            options["headers"] = self._headers({"Content-Type": "multipart/form-data"})
            files = [(f.field, (f.filename, f.data, f.mime)) for f in call.files]
            return self._request("post", call.path, options, timeout, cap, body=call.form, files=files)
        options["headers"] = self._headers()
        return self._request("post", call.path, options, timeout, cap, body=call.json)

    def get(self, path: str, timeout: float) -> HttpAnswer:
        return self._request("get", path, {"timeout": timeout, "headers": self._headers()}, timeout, None)

    def _request(
        self, method: str, path: str, options: dict[str, Any], timeout: float, cap: int | None, **kwargs: Any
    ) -> HttpAnswer:
        if not timeout > 0:  # the deadline passed before we began: never hand a socket a negative timeout
            raise TransportFailure(Failure(Kind.TIMEOUT, "the deadline passed before the request was sent"))
        cap = min(cap or self.max_answer, self.max_answer)
        with self._budget.bound(time.monotonic() + timeout, cap):
            try:
                return self._exchange(method, path, options, cap, kwargs)
            except TransportFailure:
                raise
            except Exception as exc:
                raise TransportFailure(self._failure(exc, timeout)) from None

    def _exchange(
        self, method: str, path: str, options: dict[str, Any], cap: int, kwargs: dict[str, Any]
    ) -> HttpAnswer:
        client: Any = self._client  # raw mode: the SDK's typed overloads do not describe what comes back
        try:
            if method == "post":
                response = client.post(path, cast_to=object, options=options, **kwargs)
            else:
                response = client.get(path, cast_to=object, options=options)
        except openai.APIStatusError as exc:  # its body was read by the SDK through `wire`: capped, in time
            raw = exc.response
            return HttpAnswer(exc.status_code, raw.content, _lower_headers(raw.headers), self.redact)
        raw = response.http_response
        try:
            declared = raw.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise TransportFailure(_too_large(cap, int(declared)))
            body = _read_capped(raw.iter_bytes(_CHUNK), cap)
        finally:
            raw.close()
        return HttpAnswer(raw.status_code, body, _lower_headers(raw.headers), self.redact)

    def _failure(self, exc: BaseException, timeout: float) -> Failure:
        """What went wrong without a usable answer, the key removed from whatever the library said."""
        failure = request_failure(self.base_url, exc, timeout)
        return Failure(failure.kind, printable(self.redact(failure.detail)), failure.status)

    def download(self, url: str, timeout: float) -> bytes:
        """Fetch an http(s) picture URL, without our API key, with a size cap, within `timeout`."""
        if not timeout > 0:
            raise TransportFailure(
                Failure(Kind.TIMEOUT, "the deadline passed before the picture was downloaded")
            )
        # A separate plain HTTP client from the SDK's: the key must never go to a third-party host.
        with (
            self._budget.bound(time.monotonic() + timeout, MAX_DOWNLOAD_BYTES),
            http_client(self._budget) as client,
        ):
            try:
                with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise TransportFailure(
                            Failure(
                                Kind.BAD_ANSWER, f"downloading the picture failed with {response.status_code}"
                            )
                        )
                    return bytes(_read_capped(response.iter_bytes(_CHUNK), MAX_DOWNLOAD_BYTES))
            except TransportFailure:
                raise
            except Exception as exc:
                failure = download_failure(exc, timeout)
                raise TransportFailure(
                    Failure(failure.kind, printable(self.redact(failure.detail)))
                ) from None

    def abort(self) -> None:
        """From another thread: end the request in flight now and refuse any further one."""
        self._budget.abort()

    def close(self) -> None:
        self._client.close()


def _read_capped(chunks: Any, cap: int) -> bytearray:
    """One growing buffer, not a list of chunks plus a joined copy: half the peak memory for big answers.

    `wire` already bounds the time of every read and the decoded size; this is the last guard on size."""
    body = bytearray()
    for chunk in chunks:
        if len(body) + len(chunk) > cap:
            raise TransportFailure(_too_large(cap))
        body += chunk
    return body


def request_failure(base_url: str, exc: BaseException, timeout: float) -> Failure:
    """Classify an exception raised while asking the server (pure)."""
    cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
    if isinstance(cause, BodyRefused):
        kind = Kind.HOSTILE if cause.too_large else Kind.BAD_ANSWER
        return Failure(kind, cause.reason)
    if isinstance(cause, (openai.APITimeoutError, httpx.TimeoutException)):
        return Failure(Kind.TIMEOUT, f"no complete answer from {base_url} within {_secs(timeout)}")
    if isinstance(cause, httpx.TooManyRedirects):
        return Failure(Kind.NOT_IMAGE_API, f"{base_url} redirects in a loop (more than a few redirects)")
    if isinstance(cause, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return Failure(Kind.NOT_IMAGE_API, f"{base_url} redirected off http(s) ({_cause_name(cause)})")
    if isinstance(cause, httpx.ProtocolError):
        text = str(cause).lower()
        if any(w in text for w in ("disconnect", "closed", "incomplete", "reset")):
            return Failure(
                Kind.CAPACITY, f"the connection broke while reading the answer ({_cause_name(cause)})"
            )
        return Failure(
            Kind.NOT_IMAGE_API, f"{base_url} does not speak HTTP as expected ({_cause_name(cause)})"
        )
    return connection_failure(base_url, cause)


def download_failure(exc: BaseException, timeout: float) -> Failure:
    """Classify an exception raised while downloading an answer's picture URL (pure)."""
    if isinstance(exc, BodyRefused):
        return Failure(
            Kind.HOSTILE if exc.too_large else Kind.BAD_ANSWER, f"the picture download: {exc.reason}"
        )
    if isinstance(exc, httpx.TimeoutException):
        return Failure(Kind.TIMEOUT, f"the picture download did not finish within {_secs(timeout)}")
    if isinstance(exc, httpx.TooManyRedirects):
        return Failure(Kind.BAD_ANSWER, "the picture URL redirects in a loop")
    return Failure(Kind.BAD_ANSWER, f"downloading the picture failed ({_cause_name(exc)})")


def _secs(timeout: float) -> str:
    return f"{timeout:.1f} s" if timeout < 10 else f"{timeout:.0f} s"


def _too_large(cap: int, declared: int | None = None) -> Failure:
    size = f"{declared / 1024 / 1024:.0f} MiB, " if declared else ""
    return Failure(
        Kind.HOSTILE, f"the answer is {size}larger than the {cap // (1024 * 1024)} MiB cap; refused"
    )


def _lower_headers(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


def _cause_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = " ".join(str(cause).split())[:160]  # a library's message may quote what the server sent
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def connection_failure(base_url: str, exc: BaseException) -> Failure:
    """Refused and DNS errors mean nothing is listening (stop); resets mean a flaky server (retry)."""
    cause = exc.__cause__ or exc
    text = f"{type(cause).__name__} {cause}".lower()
    if any(
        w in text
        for w in ("refused", "name or service", "nodename", "getaddrinfo", "no address", "unreachable")
    ):
        return Failure(Kind.UNREACHABLE, f"cannot connect to {base_url} ({_cause_name(exc)})")
    return Failure(Kind.CAPACITY, f"the connection to {base_url} broke ({_cause_name(exc)})")
