"""`image-gen demo`: the whole client against the bundled emulator, with no server and no quota.

Runs one text-to-image and one image-to-image generation exactly as a real run would (same engine, same
HTTP, same files), so a new user or an agent builder sees the full round trip in seconds; then, when the
`mcp` extra is installed, one more picture through `image-gen mcp` over stdio with the SDK's own client,
the way an MCP client (Claude Desktop, Cursor, ...) would ask for it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .batch import run_request
from .config import Settings
from .emulator import Emulator
from .engine import Generator
from .errors import ExitCode, ImageGenError
from .geometry import parse_ratio
from .request import ImageRequest, SavedImage, prepare

TEXT_PROMPT = "a cute cat sitting on a windowsill at sunset, cartoon style, vibrant colors"
EDIT_PROMPT = "the same cat as a Japanese anime illustration, soft cel shading, keep the pose"
MCP_PROMPT = "the cat asleep on the windowsill at night, watercolor painting"


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
        # The MCP round trip starts a server process and its client: it runs alongside the first two.
        mcp: list[Path | BaseException | None] = []
        alongside = threading.Thread(target=_collect, args=(mcp, demo_settings, console), daemon=True)
        alongside.start()
        generator = Generator(demo_settings, warn=console.warn, info=console.info)
        try:
            console.say("demo: 1/3 text-to-image, 16:9")
            first = _one(
                generator, ImageRequest(TEXT_PROMPT, aspect_ratio=parse_ratio("16:9")), demo_settings
            )
            on_saved(first.path)
            console.say("demo: 2/3 image-to-image from the first picture")
            second = _one(generator, ImageRequest(EDIT_PROMPT, images=(first.path,)), demo_settings)
            on_saved(second.path)
        finally:
            generator.close()
        alongside.join()
        [third] = mcp
        if isinstance(third, BaseException):
            raise third
        if third is not None:
            on_saved(third)
    console.say(
        "demo: done; the pictures above are synthetic. Point --base-url at a real server for real ones."
    )
    return ExitCode.OK


def _one(generator: Generator, request: ImageRequest, settings: Settings) -> SavedImage:
    result = run_request(generator, prepare(request, settings))
    if result.errors:
        raise result.errors[0]
    return result.images[0]


def _collect(into: list[Path | BaseException | None], settings: Settings, console: _Console) -> None:
    try:
        into.append(_through_mcp(settings, console))
    except BaseException as exc:  # handed to the main thread, which raises it
        into.append(exc)


def _through_mcp(settings: Settings, console: _Console) -> Path | None:
    """One picture through `python -m image_gen_local mcp`, spawned and asked by the SDK's client."""
    try:
        import anyio
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client
    except ImportError:
        console.say("demo: 3/3 skipped: the MCP round trip needs: pip install 'image-gen-local[mcp]'")
        return None
    console.say("demo: 3/3, alongside: the same generator as an MCP server (`image-gen mcp` over stdio)")
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if k.startswith(("IMAGE_GEN_", "XDG_"))}
    env.update(
        IMAGE_GEN_BASE_URL=settings.base_url,
        IMAGE_GEN_OUTPUT_DIR=str(settings.output_dir),
        PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    )
    env.pop("IMAGE_GEN_API_KEY", None)
    params = StdioServerParameters(command=sys.executable, args=["-m", "image_gen_local", "mcp"], env=env)

    async def trip() -> Any:
        with tempfile.TemporaryFile("w+") as log:
            async with Client(stdio_client(params, errlog=log)) as client:
                arguments = {"prompt": MCP_PROMPT, "aspect_ratio": "3:2", "preview": "none"}
                return await client.call_tool("generate_image", arguments)

    result = anyio.run(trip)
    if result.is_error:
        raise ImageGenError(f"the MCP round trip failed: {result.content[0].text}", "please report it")
    return Path(result.structured_content["images"][0]["path"])
