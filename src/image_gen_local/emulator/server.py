"""Offline emulator of the Antigravity Tools image API (docs/server-api.md): the HTTP edge.

Users try the tool without spending quota, and every test of the project runs against it, so it copies the
real server where a client can notice (status codes, plain-text error bodies, how `size`, `quality`,
`image_size` and model suffixes pick the aspect ratio and pixel size, prompt rewriting, chat markdown
replies) and draws pictures that say loudly that they are synthetic.

This module is only HTTP framing: it reads a request into an `app.Request`, hands it to `app.App`, and
writes the `Reply` back (delayed, streamed, cut or reset as the reply says). What the server answers is
decided in app.py, rules.py and faults.py; its pictures are drawn in synthetic.py.
"""

from __future__ import annotations

import contextlib
import io
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import App, EmulatorConfig, RecordedRequest
from .faults import FaultPlan, parse_spec
from .intake import Request
from .replies import Reply, plain
from .rules import MAX_BODY

__all__ = ["Emulator", "EmulatorConfig", "RecordedRequest", "Reply", "serve"]


class _BodyError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class _Trickle(io.BufferedIOBase):
    """A writer that sends one byte every `pace` seconds: the `trickle` fault."""

    def __init__(self, out: Any, pace: float) -> None:
        super().__init__()
        self.out, self.pace = out, pace

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        for byte in bytes(data):
            self.out.write(bytes([byte]))
            self.out.flush()
            time.sleep(self.pace)
        return len(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self._connections: set[socket.socket] = set()
        self._resets: set[socket.socket] = set()
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

    def reset(self, connection: socket.socket) -> None:
        """Have this connection closed with a TCP reset (RST) instead of an orderly FIN."""
        with self._connections_lock:
            self._resets.add(connection)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            with contextlib.suppress(OSError):
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close()
            return
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
        if self.server.app.config.verbose:
            sys.stderr.write(f"[emulator] {self.address_string()} {format % args}\n")

    def _dispatch(self) -> None:
        app = self.server.app
        started = time.monotonic()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)  # the first of a repeated header counts
        request = Request(self.command, self.path, headers, received=started)
        try:
            request.body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            request.unreadable = exc.reply
        except Exception as exc:  # a bug in the emulator: say so instead of dropping the connection
            traceback.print_exc(file=sys.stderr)
            request.unreadable = plain(500, f"image-gen-local emulator internal error: {exc!r}")
        reply, record = app.exchange(request)
        try:
            if reply.delay > 0:  # the answer comes `delay` after the work started, rendering included
                time.sleep(max(0.0, reply.delay - (time.monotonic() - (record.admitted or started))))
        finally:
            app.done(record)  # the work is done: its place is free before the client can ask again
        record.answered = time.monotonic()
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if app.config.verbose:
            self._log(record, reply, started)

    def _log(self, record: RecordedRequest, reply: Reply, started: float) -> None:
        fields = [record.route, "scripted" if record.scripted else ""] + [
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
        if reply.reset == "before":
            self.close_connection = True
            self.server.reset(self.connection)
            return
        if reply.pace > 0:  # a trickle: every byte of the answer, status line first, one at a time
            self.close_connection = True
            out, self.wfile = self.wfile, _Trickle(self.wfile, reply.pace)
            try:
                self._write(reply)
            finally:
                self.wfile = out
            return
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        payload = reply.payload
        length = reply.length if reply.length is not None else len(payload)
        if length > len(payload) and reply.chunks is None:
            self.close_connection = True  # a body cut short: the connection ends where the bytes do
        names = {name.lower() for name in reply.headers}
        self.send_response(reply.status)
        if reply.content_type and "content-type" not in names:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(name, value)
        if self.close_connection and "connection" not in names:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if reply.chunks is not None:
            for chunk in reply.chunks():
                self.wfile.write(chunk)
        elif reply.reset == "during":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.server.reset(self.connection)
        elif payload:
            self.wfile.write(payload)

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


# ------------------------------------------------------------------------------------------------- public


class Emulator:
    """The emulator in a daemon thread; `port=0` picks a free port (read it back from `base_url`)."""

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.host = host
        self.port = port
        self.app = App(self.config)
        self.requests: list[RecordedRequest] = self.app.requests
        self.faults: FaultPlan = self.app.plan
        self.gate = self.app.gate
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        if self._server is None:
            server = _Server((self.host, self.port), self.app)
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
        self.app.gate.close()
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

    def script(self, *items: Reply | str) -> None:
        """Queue answers for the next POSTs to the image routes, ahead of auth and normal handling.

        Each item is a Reply to send as it is, or a fault spec such as "429-retry-delay:0.1" or "ok".
        """
        self.faults.push(item if isinstance(item, Reply) else parse_spec(item) for item in items)


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8045) -> None:
    """Blocking; prints to stderr: 'image-gen-local emulator on http://HOST:PORT/v1 — pictures are SYNTHETIC
    (no model is called); Ctrl-C to stop'. Ctrl-C stops cleanly (no traceback)."""
    emulator = Emulator(config, host, port)
    try:  # from the start: a Ctrl-C while the banner is written stops it as cleanly as one later
        emulator.start()
        print(
            f"image-gen-local emulator on {emulator.base_url} — pictures are SYNTHETIC (no model is called); "
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
