"""image-gen-local: pictures from a local OpenAI-compatible image server (Antigravity Tools by default).

    from image_gen_local import generate, Settings
    result = generate("a lighthouse at dusk, watercolor", aspect_ratio="3:2")

The public names are loaded on first use, so `image-gen --help` and the CLI's usage errors do not pay for
importing the openai SDK or Pillow; type checkers see them through the imports below.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .version import __version__

# Public name -> the module that defines it.
_EXPORTS = {
    "generate": "api",
    "BatchOptions": "batch",
    "Job": "batch",
    "run_batch": "batchfile",
    "run_jobs": "batch",
    "run_request": "batch",
    "Settings": "config",
    "Generator": "engine",
    "ExitCode": "errors",
    "ImageGenError": "errors",
    "ImageRequest": "request",
    "Result": "request",
    "SavedImage": "request",
    "prepare": "request",
}

__all__ = [  # exactly the names above, and the version (a test holds them together)
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
    "run_request",
]

if TYPE_CHECKING:
    from .api import generate
    from .batch import BatchOptions, Job, run_jobs, run_request
    from .batchfile import run_batch
    from .config import Settings
    from .engine import Generator
    from .errors import ExitCode, ImageGenError
    from .request import ImageRequest, Result, SavedImage, prepare


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
