"""`image-gen demo`: the whole client against the bundled emulator, with no server and no quota.

Runs one text-to-image and one image-to-image generation exactly as a real run would (same engine, same
HTTP, same files), so a new user or an agent builder sees the full round trip in seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .batch import run_request
from .config import Settings
from .emulator import Emulator
from .engine import Generator
from .errors import ExitCode
from .geometry import parse_ratio
from .request import ImageRequest, SavedImage, prepare

TEXT_PROMPT = "a cute cat sitting on a windowsill at sunset, cartoon style, vibrant colors"
EDIT_PROMPT = "the same cat as a Japanese anime illustration, soft cel shading, keep the pose"


class _Console(Protocol):
    def say(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...


def run_demo(settings: Settings, console: _Console, on_saved: Callable[[Path], None]) -> int:
    """Both pictures; `on_saved` gets each path as it is saved (the CLI prints its marker line)."""
    with Emulator() as emulator:
        console.say(f"demo: started the bundled emulator at {emulator.base_url}")
        console.say("demo: its pictures are SYNTHETIC (drawn locally, no AI model is called)")
        demo_settings = dataclasses.replace(settings, base_url=emulator.base_url, api_key=None, route="auto")
        generator = Generator(demo_settings, warn=console.warn, info=console.info)
        try:
            console.say("demo: 1/2 text-to-image, 16:9")
            first = _one(
                generator, ImageRequest(TEXT_PROMPT, aspect_ratio=parse_ratio("16:9")), demo_settings
            )
            on_saved(first.path)
            console.say("demo: 2/2 image-to-image from the first picture")
            second = _one(generator, ImageRequest(EDIT_PROMPT, images=(first.path,)), demo_settings)
            on_saved(second.path)
        finally:
            generator.close()
    console.say(
        "demo: done; both pictures above are synthetic. Point --base-url at a real server for real ones."
    )
    return ExitCode.OK


def _one(generator: Generator, request: ImageRequest, settings: Settings) -> SavedImage:
    result = run_request(generator, prepare(request, settings))
    if result.errors:
        raise result.errors[0]
    return result.images[0]
