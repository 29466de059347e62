"""`image-gen demo`: the whole client against the bundled emulator, with no server and no quota.

Runs one text-to-image and one image-to-image generation exactly as a real run would (same engine, same
HTTP, same files), so a new user or an agent builder sees the full round trip in seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from .cli import marker
from .config import Settings
from .emulator import Emulator
from .engine import Generator, ImageRequest, prepare
from .errors import ExitCode
from .geometry import parse_ratio

TEXT_PROMPT = "a cute cat sitting on a windowsill at sunset, cartoon style, vibrant colors"
EDIT_PROMPT = "the same cat as a Japanese anime illustration, soft cel shading, keep the pose"


class _Console(Protocol):
    def result(self, line: str) -> None: ...
    def say(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...


def run_demo(settings: Settings, console: _Console) -> int:
    with Emulator() as emulator:
        console.say(f"demo: started the bundled emulator at {emulator.base_url}")
        console.say("demo: its pictures are SYNTHETIC (drawn locally, no AI model is called)")
        demo_settings = dataclasses.replace(settings, base_url=emulator.base_url, api_key=None, route="auto")
        generator = Generator(demo_settings, warn=console.warn, info=console.info)
        try:
            console.say("demo: 1/2 text-to-image, 16:9")
            first = generator.run(
                prepare(ImageRequest(TEXT_PROMPT, aspect_ratio=parse_ratio("16:9")), demo_settings)
            )
            if first.errors:
                raise first.errors[0]
            console.result(marker(first.images[0].path))
            console.say("demo: 2/2 image-to-image from the first picture")
            second = generator.run(
                prepare(ImageRequest(EDIT_PROMPT, images=(first.images[0].path,)), demo_settings)
            )
            if second.errors:
                raise second.errors[0]
            console.result(marker(second.images[0].path))
        finally:
            generator.close()
    console.say(
        "demo: done; both pictures above are synthetic. Point --base-url at a real server for real ones."
    )
    return ExitCode.OK
