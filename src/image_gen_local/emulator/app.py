"""The emulator's application: what it answers to a request, apart from the HTTP framing in server.py.

Its configuration, the record of what arrived, and the steps from a parsed request to a `Reply`:
executing a server plan (rendering the synthetic pictures), wrapping pictures the way each route answers,
and the `/emulator/faults` control endpoint. No sockets here, so each step is testable alone.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from ..upstream import FLASH_IMAGE, PRO_IMAGE
from .faults import FaultPlan, Pictures, parse_pool, parse_specs
from .rules import (
    FORMATS,
    TEXT_REPLY,
    ImageJob,
    ReceivedImage,
    Reply,
    TextJob,
    chat_completion,
    chat_stream,
    empty,
    images_response,
    json_reply,
    markdown_image,
    parse_json_body,
    parse_multipart,
    plain,
    split_edit_form,
    upstream_image_error,
)
from .synthetic import render_job


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
