"""HTTP through the official openai SDK, answers read raw.

The SDK gives us auth, base-URL handling, multipart encoding and connection pooling. We switch off its
retries (ours know about Antigravity's plain-text errors and the whole-command deadline) and read every
answer as bytes with a size cap, so any shape can be parsed and a huge answer cannot exhaust memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import openai

from .failures import Failure, Kind
from .protocol import Call

# Largest answer we read: a 4K PNG from Gemini is ~30 MB, ~40 MB as base64.
MAX_ANSWER_BYTES = 128 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
_CHUNK = 1024 * 1024
# The SDK's own switch for "return the raw streaming response" (what `with_streaming_response` sets).
_RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}


@dataclass
class HttpAnswer:
    status: int
    body: bytes | bytearray  # the caller may empty it once parsed: a 4K answer is ~40 MB
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class TransportFailure(Exception):
    """No HTTP answer at all (refused, reset, timed out, too large): carries its classification."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def make_client(base_url: str, api_key: str | None) -> openai.OpenAI:
    # Always pass a key explicitly so the SDK never picks up OPENAI_API_KEY and sends it to a local proxy.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "unused", max_retries=0)


class Transport:
    """Sends Calls and returns HttpAnswers; every failure without an answer becomes a TransportFailure."""

    def __init__(self, base_url: str, api_key: str | None, max_answer: int = MAX_ANSWER_BYTES) -> None:
        self.base_url = base_url
        self.has_key = bool(api_key)
        self.max_answer = max_answer
        self._client = make_client(base_url, api_key)

    def _headers(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        headers: dict[str, Any] = dict(_RAW_STREAM)
        if not self.has_key:
            headers["Authorization"] = openai.Omit()
        headers.update(extra or {})
        return headers

    def send(self, call: Call, timeout: float) -> HttpAnswer:
        options: dict[str, Any] = {"timeout": timeout}
        if call.form is not None:
            options["headers"] = self._headers({"Content-Type": "multipart/form-data"})
            files = [(f.field, (f.filename, f.data, f.mime)) for f in call.files]
            return self._request("post", call.path, options, body=call.form, files=files, timeout=timeout)
        options["headers"] = self._headers()
        return self._request("post", call.path, options, body=call.json, timeout=timeout)

    def get(self, path: str, timeout: float) -> HttpAnswer:
        return self._request("get", path, {"timeout": timeout, "headers": self._headers()}, timeout=timeout)

    def _request(
        self, method: str, path: str, options: dict[str, Any], timeout: float, **kwargs: Any
    ) -> HttpAnswer:
        deadline = time.monotonic() + timeout
        client: Any = self._client  # raw mode: the SDK's typed overloads do not describe what comes back
        try:
            if method == "post":
                response = client.post(path, cast_to=object, options=options, **kwargs)
            else:
                response = client.get(path, cast_to=object, options=options)
        except openai.APIStatusError as exc:
            raw = exc.response
            body: bytes | bytearray = raw.content[: self.max_answer] if raw is not None else b""
            return HttpAnswer(exc.status_code, body, _lower_headers(raw.headers if raw is not None else {}))
        except openai.APITimeoutError:
            raise TransportFailure(
                Failure(Kind.TIMEOUT, f"no answer from {self.base_url} within {timeout:.0f} s")
            ) from None
        except openai.APIConnectionError as exc:
            raise TransportFailure(connection_failure(self.base_url, exc)) from None
        raw = response.http_response
        try:
            declared = raw.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_answer:
                raise TransportFailure(_too_large(self.max_answer, int(declared)))
            body = _read_capped(raw.iter_bytes(_CHUNK), self.max_answer, deadline)
        except TransportFailure:
            raise
        except Exception as exc:  # the HTTP library's own errors, raised while the body streams in
            if "timeout" in type(exc).__name__.lower():
                failure = Failure(Kind.TIMEOUT, f"the answer did not finish within {timeout:.0f} s")
                raise TransportFailure(failure) from None
            raise TransportFailure(  # a reset or protocol error in the middle of the body
                Failure(Kind.CAPACITY, f"the connection broke while reading the answer ({_cause_name(exc)})")
            ) from None
        finally:
            raw.close()
        return HttpAnswer(raw.status_code, body, _lower_headers(raw.headers))

    def download(self, url: str, timeout: float) -> bytes:
        """Fetch an http(s) picture URL, without our API key, with a size cap and the deadline."""
        deadline = time.monotonic() + timeout
        # A separate plain HTTP client from the SDK: the key must never go to a third-party host.
        with openai.DefaultHttpxClient(timeout=timeout, follow_redirects=True) as client:
            try:
                with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise TransportFailure(
                            Failure(
                                Kind.BAD_ANSWER, f"downloading the picture failed with {response.status_code}"
                            )
                        )
                    if not str(response.url).lower().startswith(("http://", "https://")):
                        raise TransportFailure(
                            Failure(Kind.BAD_ANSWER, "the picture URL redirected off http(s)")
                        )
                    return bytes(_read_capped(response.iter_bytes(_CHUNK), MAX_DOWNLOAD_BYTES, deadline))
            except TransportFailure:
                raise
            except Exception as exc:
                raise TransportFailure(
                    Failure(Kind.BAD_ANSWER, f"downloading the picture failed ({_cause_name(exc)})")
                ) from None

    def close(self) -> None:
        self._client.close()


def _read_capped(chunks: Any, cap: int, deadline: float) -> bytearray:
    """One growing buffer, not a list of chunks plus a joined copy: half the peak memory for big answers."""
    body = bytearray()
    for chunk in chunks:
        if len(body) + len(chunk) > cap:
            raise TransportFailure(_too_large(cap))
        if time.monotonic() > deadline:
            raise TransportFailure(Failure(Kind.TIMEOUT, "the answer did not finish before the deadline"))
        body += chunk
    return body


def _too_large(cap: int, declared: int | None = None) -> Failure:
    size = f"{declared / 1024 / 1024:.0f} MiB, " if declared else ""
    return Failure(
        Kind.HOSTILE, f"the answer is {size}larger than the {cap // (1024 * 1024)} MiB cap; refused"
    )


def _lower_headers(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


def _cause_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip()
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
