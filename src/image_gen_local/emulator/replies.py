"""The emulator's answers: the `Reply` an HTTP edge sends, and builders for the shapes the real server uses
(plain-text errors, JSON, chat completions with markdown pictures, SSE streams, images API data)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"


@dataclass
class Reply:
    """One HTTP answer; also what tests queue with `Emulator.script` to drill the client's error handling."""

    status: int
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = TEXT_PLAIN
    delay: float = 0.0
    reset: str | None = None  # "before": drop the connection unanswered; "during": halfway through the body
    chunks: Callable[[], Iterator[bytes]] | None = None  # a body produced while it is sent (never in memory)
    length: int | None = (
        None  # Content-Length: required with `chunks`; above the body's size, a body cut short
    )
    pace: float = 0.0  # seconds between bytes: the whole answer, status line first, dribbled one at a time

    @property
    def payload(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


def plain(status: int, text: str) -> Reply:
    return Reply(status, text, content_type=TEXT_PLAIN)


def empty(status: int) -> Reply:
    return Reply(status, b"", content_type="")


def json_reply(status: int, obj: object) -> Reply:
    return Reply(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), content_type=APPLICATION_JSON)


def markdown_image(mime: str, b64: str) -> str:
    return f"![image](data:{mime};base64,{b64})"


def chat_completion(model: str, content: str, created: int, completion_id: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def chat_stream(model: str, content: str, created: int, completion_id: str) -> bytes:
    """SSE as the server sends it: role chunk, one chunk with the whole content, stop chunk, [DONE]."""
    deltas: list[tuple[dict[str, str], str | None]] = [
        ({"role": "assistant"}, None),
        ({"content": content}, None),
        ({}, "stop"),
    ]
    events = []
    for delta, finish in deltas:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        events.append(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode("utf-8")


def images_response(
    pictures: Sequence[tuple[bytes, str]], response_format: str, created: int
) -> dict[str, Any]:
    items = []
    for data, mime in pictures:
        b64 = base64.b64encode(data).decode("ascii")
        items.append({"url": f"data:{mime};base64,{b64}"} if response_format == "url" else {"b64_json": b64})
    return {"created": created, "data": items}
