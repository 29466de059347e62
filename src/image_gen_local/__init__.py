"""image-gen-local: pictures from a local OpenAI-compatible image server (Antigravity Tools by default).

from image_gen_local import ImageRequest, Generator, Settings, prepare
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "BatchOptions",
    "ExitCode",
    "Generator",
    "ImageGenError",
    "ImageRequest",
    "Job",
    "Result",
    "SavedImage",
    "Settings",
    "__version__",
    "generate",
    "prepare",
    "run_batch",
    "run_jobs",
]

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy so that `image-gen --help` and the CLI's usage errors do not pay for importing the openai SDK.
    if name in ("Generator", "ImageRequest", "Result", "SavedImage", "prepare", "generate"):
        from . import engine

        return getattr(engine, name)
    if name in ("BatchOptions", "run_batch", "run_jobs", "Job"):
        from . import batch

        return getattr(batch, name)
    if name == "Settings":
        from .config import Settings

        return Settings
    if name in ("ExitCode", "ImageGenError"):
        from . import errors

        return getattr(errors, name)
    raise AttributeError(name)
