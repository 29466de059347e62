"""What a request becomes in the emulator, without a socket: a job to answer, or the server's error reply."""

from __future__ import annotations

import base64

import pytest

from helpers import png_bytes
from image_gen_local.emulator.plans import (
    ImageJob,
    TextJob,
    chat_inputs,
    chat_prompt,
    plan_chat,
    plan_generation,
)
from image_gen_local.emulator.replies import Reply
from image_gen_local.upstream import FLASH_IMAGE, PRO_IMAGE

BOTH = (PRO_IMAGE, FLASH_IMAGE)
CAT = {"prompt": "a cat"}


@pytest.mark.parametrize(
    ("name", "body", "models", "status", "ratio", "tier", "count"),
    [
        ("a ratio as size is taken as it is", CAT | {"size": "16:9"}, BOTH, None, "16:9", "1K", 1),
        ("pixels are read as the nearest ratio", CAT | {"size": "1792x1024"}, BOTH, None, "16:9",
         "1K", 1),
        ("image_size picks the tier", CAT | {"size": "1:1", "image_size": "4K"}, BOTH, None, "1:1",
         "4K", 1),
        ("n is read", CAT | {"n": 3}, BOTH, None, "1:1", "1K", 3),
        ("a missing prompt is refused at once", {"size": "1:1"}, BOTH, 400, None, None, None),
        ("a body that is not an object has no prompt", ["a cat"], BOTH, 400, None, None, None),
        ("n = 0 fails late, as Google gives no picture", CAT | {"n": 0}, BOTH, 502, None, None, 0),
        ("a bucket without accounts fails late with the quota words", CAT, (PRO_IMAGE,), 502,
         None, None, 1),
    ],
)  # fmt: skip
def test_a_generation_body_becomes_a_job_or_the_servers_error(name, body, models, status, ratio, tier, count):
    plan = plan_generation(body, models)
    if status is None:
        assert isinstance(plan, ImageJob) and plan.error is None, name
        assert (plan.geometry.ratio, plan.geometry.tier, plan.count) == (ratio, tier, count), name
    elif isinstance(plan, ImageJob):  # the server fails only after its upstream call
        assert plan.error is not None and plan.error.status == status and plan.count == count, name
    else:
        assert isinstance(plan, Reply) and plan.status == status, name


def test_a_chat_for_a_text_model_gets_a_text_job_and_one_for_an_image_model_an_image_job():
    messages = [{"role": "user", "content": "a cat"}]
    assert isinstance(plan_chat({"model": "gemini-3-flash", "messages": messages}, BOTH), TextJob)
    job = plan_chat({"model": PRO_IMAGE, "messages": messages}, BOTH)
    assert isinstance(job, ImageJob) and job.route == "chat" and job.prompt.startswith("a cat")


@pytest.mark.parametrize(
    ("body", "words"),
    [({"messages": []}, "missing field `model`"), ({"model": PRO_IMAGE}, "missing field `messages`")],
)
def test_a_chat_without_model_or_messages_is_refused_with_the_servers_words(body, words):
    plan = plan_chat(body, BOTH)
    assert isinstance(plan, Reply) and plan.status == 422 and words in str(plan.body)


def test_chat_pictures_come_from_image_url_parts_and_pasted_markdown_but_not_into_the_prompt():
    picture = base64.b64encode(png_bytes((8, 8))).decode()
    messages = [
        {"role": "assistant", "content": f"here: ![img](data:image/png;base64,{picture})"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "make it blue"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{picture}"}},
            ],
        },
    ]
    found = chat_inputs(messages)
    assert [image.label for image in found] == ["messages[0] markdown", "messages[1] image_url"]
    assert all(image.sniffed == "PNG" for image in found)
    assert chat_prompt(messages) == "make it blue"
