import base64
import json

import pytest

from image_gen_local.answers import AnswerError, UnsafeSource, all_sources, decode_source, parse_answer

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def sources(body: dict | str | bytes) -> list[str]:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return all_sources(parse_answer(raw))


def test_images_api_b64_and_url():
    assert sources({"data": [{"b64_json": PNG}]}) == [PNG]
    assert sources({"data": [{"url": "data:image/png;base64," + PNG}]}) == ["data:image/png;base64," + PNG]
    assert sources({"data": [{"url": "https://cdn.example/x.png"}]}) == ["https://cdn.example/x.png"]
    assert sources({"data": []}) == []


def test_antigravity_chat_markdown_takes_drafts_in_order():
    content = (
        "Here you go ![draft](data:image/png;base64,AAAA)"
        "![image](data:image/jpeg;base64,BBBB)thinking...![image](data:image/png;base64," + PNG + ")"
    )
    body = {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    found = sources(body)
    assert len(found) == 3
    assert found[-1] == "data:image/png;base64," + PNG


def test_cliproxyapi_message_images():
    body = {
        "choices": [
            {
                "message": {
                    "content": "ok",
                    "images": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}],
                }
            }
        ]
    }
    assert sources(body) == ["data:image/png;base64," + PNG]


def test_content_part_arrays():
    body = {
        "choices": [
            {
                "message": {
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ=="}},
                    ]
                }
            }
        ]
    }
    assert sources(body) == ["data:image/png;base64,QQ=="]


def test_streamed_deltas():
    chunks = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "![image](data:image/png;base64," + PNG[:10]}}]},
        {"choices": [{"delta": {"content": PNG[10:] + ")"}}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    answer = parse_answer(body.encode(), streamed=True)
    assert all_sources(answer) == ["data:image/png;base64," + PNG]
    assert answer.finish_reason == "stop"


def test_safety_refusal_is_recognised():
    body = {"choices": [{"message": {"content": "I can't draw that."}, "finish_reason": "content_filter"}]}
    answer = parse_answer(json.dumps(body).encode())
    assert answer.refused and not all_sources(answer)


def test_error_inside_200():
    assert parse_answer(b'{"error": {"message": "No images generated"}}').error == "No images generated"


@pytest.mark.parametrize("body", [b"", b"<!DOCTYPE html><html></html>", b'{"data": [', b"[1, 2]"])
def test_unparseable_answers(body):
    with pytest.raises(AnswerError):
        parse_answer(body)


def test_decode_source():
    assert decode_source(PNG).startswith(b"\x89PNG")
    assert decode_source(PNG[:8] + "\n" + PNG[8:]).startswith(b"\x89PNG")  # line breaks tolerated
    assert decode_source("data:image/png;base64," + PNG).startswith(b"\x89PNG")
    assert decode_source("https://x/y.png") is None
    for bad in ("file:///etc/passwd", "ftp://x/y", "javascript:alert(1)", "FILE:/x"):
        with pytest.raises(UnsafeSource):
            decode_source(bad)
    with pytest.raises(ValueError):
        decode_source("not base64!!")
