"""The emulator's application: a request in, a `Reply` out, with no socket in between.

`App.answer(Request) -> Reply` is the whole server as a function, the way httpx's MockTransport takes a
handler: server.py only turns HTTP into a `Request` and the `Reply` back into bytes, so every rule of the
server (auth, routes, methods, faults, the record of what arrived) can be tested without a socket. Also
here: the configuration, executing a server plan (rendering the synthetic pictures), wrapping pictures
the way each route answers, and the `/emulator/faults` control endpoint.
"""

from __future__ import annotations

import base64
import hmac
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from ..upstream import EMULATOR_HEADER, EMULATOR_HEADER_VALUE, FLASH_IMAGE, PRO_IMAGE
from .capacity import CAPACITY_PATH, Gate
from .capacity import control as capacity_control
from .faults import (
    IMAGES,
    MODELS,
    Answer,
    FaultPlan,
    FaultSpec,
    Pictures,
    inject,
    parse_pool,
    parse_specs,
)
from .intake import ReceivedImage, Request, parse_json_body, parse_multipart, split_edit_form
from .plans import ImageJob, TextJob, plan_chat, plan_edit, plan_generation, upstream_image_error
from .replies import (
    Reply,
    chat_completion,
    chat_stream,
    empty,
    images_response,
    json_reply,
    markdown_image,
    plain,
)
from .rules import FORMATS, IMAGE_ROUTES, TEXT_REPLY, model_list, route_for
from .synthetic import render_job
from .tricks import helper_reply


@dataclass
class EmulatorConfig:
    """How this emulated server behaves; `models` are the quota buckets that "have accounts"."""

    api_key: str | None = None
    latency: float = 0.0
    models: tuple[str, ...] = (PRO_IMAGE, FLASH_IMAGE)
    image_format: str = "png"
    verbose: bool = False
    faults: str = ""  # a script of fault names for the next image requests, e.g. "429-retry-delay,ok,500"
    fault_rate: float = 0.0  # then, the chance that an image request gets a random fault from the pool
    fault_pool: str = "transient"  # "transient", "all", or fault names
    seed: int | None = None  # for repeatable random faults
    capacity: int | None = None  # image requests worked on at once; None: no limit
    queue: bool = False  # beyond the capacity: wait for a place (True) or be refused at once
    capacity_status: int = 429  # the refusal: 429 All accounts exhausted, or 503 MODEL_CAPACITY_EXHAUSTED

    def __post_init__(self) -> None:
        fmt = self.image_format.lower()
        fmt = "jpeg" if fmt == "jpg" else fmt
        if fmt not in {name for name, _, _ in FORMATS}:
            raise ValueError(f"image_format {self.image_format!r} is not one of png, jpeg, webp")
        self.image_format = fmt
        self.models = tuple(self.models)


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
    scripted: bool = False  # answered from Emulator.script() or a fault
    fault: str | None = None  # the fault injected into this answer
    received: float = 0.0  # time.monotonic() when it arrived
    admitted: float = 0.0  # and when the server started on it (later than `received` when queued)
    placed: bool = False  # it holds one of the --capacity places until the edge has waited out its delay
    answered: float = 0.0  # and when its answer was sent


def peek(route: str, content_type: str | None, raw: bytes) -> tuple[dict[str, Any], list[Any]]:
    """Best-effort record of a request answered from the script."""
    if route == "edits":
        parts = parse_multipart(content_type, raw)
        if isinstance(parts, Reply):
            return {}, []
        form = split_edit_form(parts)
        return dict(form.texts), [file_row(item) for item in form.images]
    parsed, _ = parse_json_body(content_type, raw)
    return (parsed if isinstance(parsed, dict) else {}), []


def file_row(item: ReceivedImage) -> tuple[str, str, int, str | None]:
    return (item.label, item.declared_mime, len(item.data), item.sniffed)


def chat_reply(model: str, content: str, stream: bool) -> Reply:
    created, completion_id = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if stream:
        return Reply(
            200,
            chat_stream(model, content, created, completion_id),
            headers={"Cache-Control": "no-cache"},
            content_type="text/event-stream",
        )
    return json_reply(200, chat_completion(model, content, created, completion_id))


def pictures_reply(
    route: str, model: str, pictures: Pictures, response_format: str = "b64_json", stream: bool = False
) -> Reply:
    """Pictures answered the way the route answers: `data[]` on the images API, markdown on chat."""
    if route == "chat":
        content = "".join(
            markdown_image(mime, base64.b64encode(data).decode("ascii")) for data, mime in pictures
        )
        return chat_reply(model, content, stream)
    reply = json_reply(200, images_response(pictures, response_format, int(time.time())))
    reply.headers["X-Account-Email"] = "emulator@localhost"
    if route == "edits":
        reply.headers["X-Mapped-Model"] = model
    return reply


def job_reply(job: ImageJob, pictures: Pictures) -> Reply:
    return pictures_reply(job.route, job.model, pictures, job.response_format, job.stream)


def execute(
    plan: ImageJob | TextJob | Reply, record: RecordedRequest, config: EmulatorConfig
) -> tuple[Reply, Pictures | None]:
    """Answer a plan; `config.latency` stands for the upstream call, so only what would reach it waits."""
    if isinstance(plan, Reply):
        return plan, None
    if isinstance(plan, TextJob):
        record.model, record.effective_prompt = plan.model, plan.prompt
        reply = chat_reply(plan.model, TEXT_REPLY, plan.stream)
        reply.delay = config.latency
        return reply, None
    job = plan
    record.model, record.aspect_ratio = job.model, job.geometry.ratio
    record.image_size, record.effective_prompt = job.geometry.image_size, job.prompt
    record.files = [file_row(item) for item in job.inputs]
    if job.error is not None:
        return replace(job.error, delay=config.latency if job.upstream_error else 0.0), None
    pictures = render_job(job, config.image_format)
    if pictures is None:
        return replace(upstream_image_error(job.route), delay=config.latency), None
    reply = job_reply(job, pictures)
    reply.delay = config.latency
    return reply, pictures


def control(plan: FaultPlan, method: str, content_type: str | None, raw: bytes) -> Reply:
    """GET /emulator/faults shows the plan and the catalogue; POST changes it (script, rate, pool, seed)."""
    if method == "POST":
        body, error = parse_json_body(content_type, raw)
        if error is not None:
            return error
        if not isinstance(body, dict):
            return plain(400, "expected a JSON object with script, rate, pool, seed or clear")
        try:
            if body.get("clear"):
                plan.clear()
            if body.get("script"):
                plan.push(parse_specs(body["script"]))
            pool = parse_pool(body["pool"]) if "pool" in body else None
            rate = float(body["rate"]) if "rate" in body else None
            plan.configure(rate=rate, pool=pool, seed=body.get("seed"))
        except (TypeError, ValueError) as exc:
            return plain(400, str(exc))
    elif method != "GET":
        return empty(405)
    return json_reply(200, plan.describe())


# --------------------------------------------------------------------------------------- the application


def authorized(request: Request, api_key: str | None) -> bool:
    """No key configured lets everyone in; else the key presented must be exactly it (never an empty one)."""
    if api_key is None:
        return True
    presented = request.key()
    if presented is None or not api_key:
        return False
    return hmac.compare_digest(presented.encode(), api_key.encode())


def _fault_target(method: str, route: str) -> str | None:
    """Which faults a request can be handed: image faults on image POSTs, models faults on model lists."""
    if method == "POST" and route in IMAGE_ROUTES:
        return IMAGES
    if method in ("GET", "HEAD") and route == "models":
        return MODELS
    return None


class App:
    """The emulated server without its socket: `answer(request)` gives the reply and records the request.

    Thread-safe: the HTTP edge calls it from one thread per connection.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.requests: list[RecordedRequest] = []
        self.plan = FaultPlan(
            parse_specs(self.config.faults),
            self.config.fault_rate,
            parse_pool(self.config.fault_pool),
            self.config.seed,
        )
        self.gate = Gate(self.config.capacity, self.config.queue, self.config.capacity_status)
        self._lock = threading.Lock()

    def answer(self, request: Request) -> Reply:
        reply, record = self.exchange(request)
        self.done(record)
        return reply

    def done(self, record: RecordedRequest) -> None:
        """The answer to `record` is complete (its delay waited out): its capacity place is free again."""
        if record.placed:
            record.placed = False
            self.gate.leave()

    def exchange(self, request: Request) -> tuple[Reply, RecordedRequest]:
        """The reply, and the record of the request (the edge stamps `answered` on it once it is sent)."""
        route, methods = route_for(request.path)
        record = RecordedRequest(
            request.method, request.path, route, authorized(request, self.config.api_key)
        )
        record.received = request.received or time.monotonic()
        try:
            # Beyond its capacity the server refuses at once, or (queue) starts only when a place frees;
            # a request without the key is turned away first, and takes no place.
            image = request.unreadable is None and request.method == "POST" and route in IMAGE_ROUTES
            image = image and record.authorized
            busy = self.gate.enter() if image else None
            record.placed = image and busy is None
            if busy is not None:  # what was refused, for tests and -v
                record.body, record.files = peek(route, request.header("Content-Type"), request.body)
            record.admitted = time.monotonic()
            reply = request.unreadable or busy or self._route(request, record, route, methods)
        except Exception as exc:  # a bug in the emulator: say so instead of dropping the connection
            traceback.print_exc(file=sys.stderr)
            reply = plain(500, f"image-gen-local emulator internal error: {exc!r}")
        record.status = reply.status
        with self._lock:
            self.requests.append(record)
        return replace(reply, headers={EMULATOR_HEADER: EMULATOR_HEADER_VALUE, **reply.headers}), record

    def _route(
        self, request: Request, record: RecordedRequest, route: str, methods: tuple[str, ...]
    ) -> Reply:
        content_type, raw = request.header("Content-Type"), request.body
        if route == "control" and request.path.split("?", 1)[0] == CAPACITY_PATH:
            return capacity_control(self.gate, request.method, content_type, raw)
        if route == "control":
            return control(self.plan, request.method, content_type, raw)
        helper = helper_reply(request.path)  # the faults' own endpoints: a redirect loop, a hanging download
        if helper is not None:
            return helper
        target = _fault_target(request.method, route)
        item = self.plan.next(target) if target else None
        if isinstance(item, Reply):
            record.scripted = True
            record.body, record.files = peek(route, content_type, raw)
            return item
        if item is not None and not item.fault.late:
            record.scripted, record.fault = True, str(item)
            if target == IMAGES:
                record.body, record.files = peek(route, content_type, raw)
            model = str(record.body.get("model") or PRO_IMAGE)
            return inject(item, request, route, model, lambda found: pictures_reply(route, model, found))
        if route != "health" and not record.authorized:
            return empty(401)
        if route == "other":
            return empty(404)
        if request.method not in methods:
            return empty(405)
        if route == "health":
            return json_reply(200, {"status": "ok", "emulator": True, "synthetic": True})
        if route == "models":
            reply = json_reply(200, model_list(self.config.models))
            return self._spoilt(item, request, record, route, reply, None, lambda found: reply)
        plan, unreadable = self._plan(route, content_type, raw, record)
        if unreadable is not None:
            return unreadable  # nothing would reach upstream: no fault to apply
        reply, pictures = execute(plan, record, self.config)
        job = plan if isinstance(plan, ImageJob) else None
        answer = (lambda found: job_reply(job, found)) if job else (lambda found: reply)
        return self._spoilt(item, request, record, route, reply, pictures, answer)

    @staticmethod
    def _spoilt(
        fault: FaultSpec | None,
        request: Request,
        record: RecordedRequest,
        route: str,
        reply: Reply,
        pictures: Pictures | None,
        answer: Answer,
    ) -> Reply:
        """The server's own answer, changed by a late fault if one was handed out for this request."""
        if fault is None:
            return reply
        record.scripted, record.fault = True, str(fault)
        return inject(fault, request, route, record.model or PRO_IMAGE, answer, reply, pictures)

    def _plan(
        self, route: str, content_type: str | None, raw: bytes, record: RecordedRequest
    ) -> tuple[ImageJob | TextJob | Reply, Reply | None]:
        """Read an image route's request the way the server does and plan its answer; the second item is
        the error answer when the body cannot be read at all."""
        if route == "edits":
            parts = parse_multipart(content_type, raw)
            if isinstance(parts, Reply):
                return parts, parts
            form = split_edit_form(parts)
            record.body, record.files = dict(form.texts), [file_row(item) for item in form.images]
            return plan_edit(form, self.config.models), None
        parsed, error = parse_json_body(content_type, raw)
        if error is not None:
            return error, error
        record.body = parsed if isinstance(parsed, dict) else {}
        if route == "generations":
            return plan_generation(parsed, self.config.models), None
        return plan_chat(parsed, self.config.models), None
