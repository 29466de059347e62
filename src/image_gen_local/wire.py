"""The HTTP wire under the SDK: one wall-clock deadline for every socket operation, every body capped.

The openai SDK stays our HTTP layer (auth, base URL, multipart, pooling), but its socket timeouts apply per
read, so a server trickling one byte a second could hold a request for ever, and it reads error bodies
whole and decompressed. Two pieces close that at the mechanism, for every request the SDK or a download
makes (probe, image call, error body, picture download, each redirect hop):

- `DeadlineBackend`, the network backend of the HTTP library's connection pool: every connect, read and
  write gets at most the time left before the deadline of the request running on this thread, so no
  sequence of slow reads can outlast it.
- `BoundedTransport`: every response body is decoded here, by us, with an output cap per chunk (gzip and
  deflate with the standard library; any other encoding is refused, since we ask for `identity`), and
  counted against the request's cap as it streams. A success body over the cap raises `BodyRefused`; an
  error body is cut at `ERROR_BODY_CAP` and ends quietly where the connection broke, since its status
  says enough.

The deadline and cap of the request in flight live in a `Budget`, per thread (requests are synchronous,
so the thread that sends is the thread that reads). The budget also knows its open connections, so another
thread can `abort` every request in flight at once (an MCP client cancelling a tool call).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpcore2 as httpcore
    import httpx2 as httpx
else:  # the SDK's HTTP library: httpx2 with openai 3, httpx before
    try:
        import httpcore2 as httpcore
        import httpx2 as httpx
    except ImportError:  # pragma: no cover
        import httpcore
        import httpx

__all__ = [
    "ERROR_BODY_CAP",
    "BodyRefused",
    "BoundedTransport",
    "Budget",
    "DeadlineBackend",
    "http_client",
    "httpx",
]

# An error body is read up to this much (decoded): the status and the first words say what happened.
ERROR_BODY_CAP = 256 * 1024
MAX_REDIRECTS = 5
_PIECE = 256 * 1024  # decompressed output per step: memory stays bounded whatever the ratio


class BodyRefused(Exception):
    """A success body we will not hold: over the cap, or an encoding that does not decode."""

    def __init__(self, reason: str, too_large: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


@dataclass
class _Bound:
    deadline: float | None = None
    cap: int = ERROR_BODY_CAP


class Budget:
    """The deadline and body cap of the request running on each thread, and the connections it opened."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._streams: set[_DeadlineStream] = set()
        self.aborted = False

    def track(self, stream: _DeadlineStream, open_: bool) -> None:
        with self._lock:
            if open_:
                self._streams.add(stream)
            else:
                self._streams.discard(stream)

    def abort(self) -> None:
        """End every request now: open connections are shut down (a read blocked on one returns at once)
        and no socket operation starts any more."""
        with self._lock:
            self.aborted = True
            streams = list(self._streams)
        for stream in streams:
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def current(self) -> _Bound:
        bound: _Bound | None = getattr(self._local, "bound", None)
        return bound if bound is not None else _Bound()

    @contextmanager
    def bound(self, deadline: float, cap: int) -> Iterator[None]:
        previous = getattr(self._local, "bound", None)
        self._local.bound = _Bound(deadline, cap)
        try:
            yield
        finally:
            self._local.bound = previous

    def left(self, timeout: float | None, error: type[Exception]) -> float | None:
        """The timeout for one socket operation: never past the deadline; at the deadline, `error`."""
        if self.aborted:
            raise error("the request was cancelled")
        deadline = self.current().deadline
        if deadline is None:
            return timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise error("the deadline passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, budget: Budget) -> None:
        self._inner = inner
        self._budget = budget
        budget.track(self, open_=True)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._budget.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # One bounded write per piece: a server that never reads cannot hold us past the deadline either.
        view = memoryview(buffer)
        for start in range(0, len(view), 65536):
            self._inner.write(
                bytes(view[start : start + 65536]), self._budget.left(timeout, httpcore.WriteTimeout)
            )

    def close(self) -> None:
        self._budget.track(self, open_=False)
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, self._budget.left(timeout, httpcore.ConnectTimeout)
        )
        self._budget.track(self, open_=False)
        return _DeadlineStream(inner, self._budget)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """The standard socket backend, with every operation bounded by the thread's deadline."""

    def __init__(self, budget: Budget) -> None:
        self._inner = httpcore.SyncBackend()
        self._budget = budget

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._budget.left(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream, self._budget)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = self._budget.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, left, socket_options), self._budget)


class _Decoder:
    """Content-Encoding undone in bounded pieces: gzip and deflate; identity passes through."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise ValueError(f"Content-Encoding {encoding!r}, which we did not ask for")
        self._raw_deflate_tried = False

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            yield chunk
            return
        data = chunk
        while data:
            try:
                out = self._zlib.decompress(data, _PIECE)
            except zlib.error:
                if self.encoding != "deflate" or self._raw_deflate_tried:
                    raise ValueError(f"the body is not valid {self.encoding} data") from None
                self._raw_deflate_tried = True  # some servers send raw deflate without the zlib header
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._raw_deflate_tried = True
            if out:
                yield out
            data = self._zlib.unconsumed_tail


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: Any, encoding: str, cap: int, success: bool) -> None:
        self._inner = inner
        self._encoding = encoding
        self._cap = cap
        self._success = success

    def __iter__(self) -> Iterator[bytes]:
        total = raw = 0
        try:
            decoder = _Decoder(self._encoding)
            for chunk in self._inner:
                raw += len(chunk)
                if raw > self._cap:
                    if self._success:
                        raise BodyRefused(_over(self._cap), too_large=True)
                    return
                for piece in decoder.pieces(chunk):
                    total += len(piece)
                    if total > self._cap or raw > self._cap:
                        if self._success:
                            raise BodyRefused(_over(self._cap), too_large=True)
                        yield piece[: max(0, len(piece) - (total - self._cap))]
                        return
                    yield piece
        except ValueError as exc:
            if self._success:
                raise BodyRefused(f"the answer says {exc}", too_large=False) from None
        except httpx.TransportError as exc:
            if self._success or isinstance(exc, httpx.TimeoutException):
                raise
            # An error body cut short: what arrived is all there is; the status still says what happened.

    def close(self) -> None:
        if hasattr(self._inner, "close"):
            self._inner.close()


def _over(cap: int) -> str:
    return f"the answer is larger than the {cap // (1024 * 1024)} MiB cap; refused"


# The throttle decides how many requests are in flight; the pool must not cap them below it (the HTTP
# library's default of 10 silently held every --concurrency above 10 at 10).
MAX_CONNECTIONS = 64


class BoundedTransport(httpx.BaseTransport):
    """The standard transport on a deadline-bound pool, decoding and capping every body itself."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._inner = httpx.HTTPTransport()
        pool = getattr(self._inner, "_pool", None)
        if not isinstance(pool, httpcore.ConnectionPool):  # the one private name we rely on: fail loudly
            raise RuntimeError("the HTTP library changed: its transport has no connection pool to bound")
        pool.close()
        self._inner._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=DeadlineBackend(budget),
            max_connections=MAX_CONNECTIONS,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        drop = {b"content-encoding", b"content-length"} if encoding not in ("", "identity") else set()
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in drop]
        success = 200 <= response.status_code < 300
        cap = self._budget.current().cap if success else min(ERROR_BODY_CAP, self._budget.current().cap)
        return httpx.Response(
            status_code=response.status_code,
            headers=headers,
            stream=_BoundedStream(response.stream, encoding, cap, success),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


def http_client(budget: Budget) -> httpx.Client:
    """A client whose every request is bound by `budget`; environment proxies are not used (see README)."""
    return httpx.Client(
        transport=BoundedTransport(budget),
        trust_env=False,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"Accept-Encoding": "identity"},
    )
