"""The Python front door: `generate(...)` with the command line's options as strings.

For finer control (one connection for many requests, your own warning sink, retry policy or throttle),
use `Generator` with `prepare` and `run_request`, or the batch engine (`run_batch`, `run_jobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .batch import run_request
from .config import Settings
from .engine import Generator
from .limiter import DEFAULT_CEILING
from .request import Result, prepare, usage_request
from .throttle import Throttle


def generate(
    prompt: str,
    *,
    images: Sequence[str | Path] = (),
    size: str | None = None,
    resolution: str = "1k",
    aspect_ratio: str | None = None,
    count: int = 1,
    output: str | Path | None = None,
    settings: Settings | None = None,
    warn: Callable[[str], None] | None = None,
) -> Result:
    """Generate from Python with the CLI's options as strings; errors raise ImageGenError."""
    request = usage_request(
        prompt,
        images=images,
        size=size,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        count=count,
        output=output,
    )
    settings = settings or Settings()
    prepared = prepare(request, settings)
    throttle = Throttle(min(DEFAULT_CEILING, request.count))  # as many at once as the server takes
    generator = Generator(settings, warn=warn or (lambda _message: None), throttle=throttle)
    try:
        return run_request(generator, prepared)
    finally:
        generator.close()
