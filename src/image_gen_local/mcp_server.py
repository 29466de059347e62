"""`image-gen mcp`: the same generator for every MCP client, on the official SDK's `MCPServer` (mcp 2.x).

Tools `generate_image`, `edit_image`, `list_images` and `server_status`, and SKILL.md's prompt rules as
the prompt `image_prompt_rules`. A picture's result is the `--json` document as structured content, a
`resource_link` per file and a small preview the model can look at; a failure is a tool error (isError)
with the one line the command line prints and its exit class, never a traceback. While a picture is made
the client gets a progress notification every few seconds (clients reset their timeout on each); a
client's cancellation ends the request in flight and removes whatever the call saved. Every call shares
one throttle. Only `cli/mcp.py` imports this module, so `image-gen --help` never loads the SDK.
"""

from __future__ import annotations

import base64
import hmac
import json
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.lowlevel
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field, ValidationError
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__
from .errors import ImageGenError, UsageError
from .mcp_tools import (
    EDIT_BRIEF,
    LIST_LIMIT,
    PREVIEW_SIDE,
    PREVIEWS,
    PROGRESS_SECONDS,
    RULES_BRIEF,
    STOP_GRACE,
    Call,
    Service,
    as_error,
    error_line,
    prompt_rules,
)
from .request import MAX_COUNT, Result, RunDocument
from .upstream import MAX_INPUTS

NAME = "image-gen-local"
PATH = "/mcp"


Prompt = Annotated[str, Field(description="the English prompt you wrote from the user's wish (see above)")]
Ratio = Annotated[
    str | None, Field(description="W:H, e.g. 1:1, 16:9, 9:16, 3:4, 2.39:1; default 1:1 (edits: the input's)")
]
Tier = Annotated[str | None, Field(description="1k, 2k or 4k (default 1k)")]
Size = Annotated[str | None, Field(description="exact pixel size WxH, e.g. 1500x500; overrides both above")]
Count = Annotated[int | str, Field(description=f"pictures to make, 1 to {MAX_COUNT}")]
Model = Annotated[str | None, Field(description="image model; default the server's configured model")]
Folder = Annotated[
    str | None,
    Field(description="where pictures go; a relative folder lies in the configured output folder; "
          "created if missing"),
]  # fmt: skip
Preview = Annotated[
    str,
    Field(description=f"none, small (a JPEG of at most {PREVIEW_SIDE} px for you to look at) or full "
          "(the file itself, can be megabytes)"),
]  # fmt: skip
Images = Annotated[
    list[str] | str,
    Field(description=f"input pictures (1 to {MAX_INPUTS}; the first is the main one): absolute paths, "
          "file:// URIs, or paths relative to the server's working folder or its output folder"),
]  # fmt: skip

GENERATE = (
    "Make pictures from a text prompt through the local image server (Gemini image models) and save them. "
    f"{RULES_BRIEF} Returns each file's path and size, a link to it and a small preview. Takes 10 s to "
    "minutes; progress is reported meanwhile."
)
EDIT = (
    "Transform or combine the user's pictures (style transfer, edits, the subject in a new scene) and save "
    f"the result. {EDIT_BRIEF} {RULES_BRIEF} Returns each file's path and size, a link to it and a small "
    "preview. `@last` and `@N` (the history) are not available yet: pass paths."
)
LIST = (
    "List the newest pictures in the output folder (newest first): path, pixel size, type, bytes, "
    "modified time. This version keeps no history of its own; it lists the folder."
)
STATUS = (
    "Check that pictures can be made: the image server is reachable, the key accepted, the routes offered, "
    "the output folder writable (the checks of `image-gen doctor`), and what this server is set to use."
)
MAKES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)
READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)


class _Server(MCPServer[Any]):
    """The SDK's server, whose refusal of an argument of the wrong JSON type is our one line too."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            [first, *_] = exc.__cause__.errors()
            where = ".".join(str(part) for part in first["loc"])
            fix = "send it as the tool's input schema says"
            return _failed(UsageError(f"{name}: argument {where!r}: {first['msg']}", fix))


def build_server(service: Service, progress_every: float = PROGRESS_SECONDS) -> MCPServer[Any]:
    server: MCPServer[Any] = _Server(
        NAME, version=__version__, instructions=f"{RULES_BRIEF} {EDIT_BRIEF}", log_level="WARNING"
    )
    run = partial(_pictures, service, progress_every)

    async def generate_image(
        prompt: Prompt,
        ctx: Context[Any, Any],
        aspect_ratio: Ratio = None,
        resolution: Tier = None,
        size: Size = None,
        count: Count = 1,
        model: Model = None,
        output_dir: Folder = None,
        preview: Preview = "small",
    ) -> Annotated[CallToolResult, RunDocument]:
        options = {"aspect_ratio": aspect_ratio, "resolution": resolution, "size": size, "count": count}
        return await run(ctx, preview, prompt, model=model, output_dir=output_dir, **options)

    async def edit_image(
        prompt: Prompt,
        images: Images,
        ctx: Context[Any, Any],
        aspect_ratio: Ratio = None,
        resolution: Tier = None,
        size: Size = None,
        count: Count = 1,
        model: Model = None,
        output_dir: Folder = None,
        preview: Preview = "small",
    ) -> Annotated[CallToolResult, RunDocument]:
        inputs = [images] if isinstance(images, str) else list(images)
        if not inputs:
            return _failed(UsageError("edit_image needs at least one input picture", "pass `images`"))
        options = {"aspect_ratio": aspect_ratio, "resolution": resolution, "size": size, "count": count}
        return await run(ctx, preview, prompt, images=inputs, model=model, output_dir=output_dir, **options)

    async def list_images(output_dir: Folder = None, limit: int = LIST_LIMIT) -> CallToolResult:
        try:
            listing = await anyio.to_thread.run_sync(service.pictures, output_dir, limit)
        except Exception as exc:
            return _failed(as_error(exc))
        links: list[ContentBlock] = [_link(item["path"], item["mime"]) for item in listing["images"]]
        text = TextContent(type="text", text=json.dumps(listing, indent=2, ensure_ascii=False))
        return CallToolResult(content=[text, *links], structured_content=listing)

    async def server_status() -> CallToolResult:
        report = await anyio.to_thread.run_sync(service.status)
        head = f"image-gen-local {__version__}: {'ready' if report['ok'] else 'NOT ready'}"
        text = "\n".join([head, *report["checks"]])
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=report)

    def image_prompt_rules(wish: str = "") -> str:
        """How to write the prompt and pick the options for a picture: the skill's rules (SKILL.md)."""
        rules = prompt_rules()
        if not wish.strip():
            return rules
        return f"{rules}\n\nThe user's wish: {wish.strip()}\nWrite the prompt, pick the options, then call " \
            "generate_image (or edit_image with the user's pictures)."  # fmt: skip

    server.add_tool(generate_image, title="Generate a picture", description=GENERATE, annotations=MAKES)
    server.add_tool(edit_image, title="Edit or restyle pictures", description=EDIT, annotations=MAKES)
    server.add_tool(list_images, title="List pictures", description=LIST, annotations=READS)
    server.add_tool(server_status, title="Server status", description=STATUS, annotations=READS)
    server.prompt(title="How to write an image prompt")(image_prompt_rules)
    return server


async def _pictures(
    service: Service, every: float, ctx: Context[Any, Any], preview: str, prompt: str, **options: Any
) -> CallToolResult:
    """One generate or edit call: checks, the run with progress, and the result as MCP content."""
    try:
        if preview not in PREVIEWS:
            raise UsageError(f"preview {preview!r} is not one of {', '.join(PREVIEWS)}", "use small")
        prepared, settings = await anyio.to_thread.run_sync(partial(service.prepare, prompt, **options))
        call = service.call(prepared, settings)
        result = await _run(call, ctx, every)
        try:
            delivered = await anyio.to_thread.run_sync(_delivered, result, preview)
            await anyio.lowlevel.checkpoint_if_cancelled()  # a cancellation while previews were made
        except anyio.get_cancelled_exc_class():
            call.discard()  # (seconds for 4K pictures): the call leaves nothing, as during the run
            raise
        return delivered
    except Exception as exc:  # ImageGenError, or a bug: still one line with what to do
        return _failed(as_error(exc))


async def _run(call: Call, ctx: Context[Any, Any], every: float) -> Result:
    """The call's pictures on a worker thread, progress every `every` seconds; on cancellation the
    request in flight ends and whatever the call saved is removed before the cancellation goes on."""
    async with anyio.create_task_group() as group:
        group.start_soon(_report, call, ctx, every)
        try:
            result = await anyio.to_thread.run_sync(call.run, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                call.stop()
                await anyio.to_thread.run_sync(call.finished.wait, STOP_GRACE)
                call.discard()
            raise
        finally:
            group.cancel_scope.cancel()
    return result


async def _report(call: Call, ctx: Context[Any, Any], every: float) -> None:
    while True:
        elapsed, status = call.progress()
        await ctx.report_progress(elapsed, None, f"{status} ({elapsed:.0f} s)")
        await anyio.sleep(every)


def _delivered(result: Result, preview: str) -> CallToolResult:
    """The `--json` document, a link to each picture and its preview; an error when none was saved."""
    from .images import preview as small

    document = result.as_json()
    if not result.images:
        text = "\n".join(error_line(error) for error in result.errors)
        failed: list[ContentBlock] = [TextContent(type="text", text=text)]
        return CallToolResult(content=failed, structured_content=document, is_error=True)
    content: list[ContentBlock] = [
        TextContent(type="text", text=json.dumps(document, indent=2, ensure_ascii=False))
    ]
    for saved in result.images:
        content.append(_link(str(saved.path), saved.mime))
        if preview == "small":
            data, mime = small(saved.path, PREVIEW_SIDE), "image/jpeg"
        elif preview == "full":
            data, mime = saved.path.read_bytes(), saved.mime
        else:
            continue
        encoded = base64.b64encode(data).decode("ascii")
        content.append(ImageContent(type="image", data=encoded, mime_type=mime))
    return CallToolResult(content=content, structured_content=document)


def _link(path: str, mime: str) -> ResourceLink:
    file = Path(path)
    return ResourceLink(type="resource_link", uri=file.as_uri(), name=file.name, mime_type=mime)


def _failed(error: ImageGenError) -> CallToolResult:
    document = Result(errors=[error]).as_json()
    text = TextContent(type="text", text=error_line(error))
    return CallToolResult(content=[text], structured_content=document, is_error=True)


def serve_stdio(server: MCPServer[Any]) -> None:
    anyio.run(server.run_stdio_async)


class Guard:
    """In front of the HTTP app: only our own Host names, and only with the token (constant-time check)."""

    def __init__(self, app: ASGIApp, token: str, hosts: set[str]) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"host", b"").decode("latin-1") not in self.hosts:
                refusal = PlainTextResponse("this server answers only to 127.0.0.1 and localhost", 421)
                return await refusal(scope, receive, send)
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                refusal = PlainTextResponse(
                    "missing or wrong token: send Authorization: Bearer <token>",
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                return await refusal(scope, receive, send)
        await self.app(scope, receive, send)


def serve_http(server: MCPServer[Any], port: int, token: str, announce: Callable[[str], None]) -> None:
    """Streamable HTTP on 127.0.0.1 only; `announce` gets the URL once the port is bound."""
    import uvicorn

    try:
        sock = socket.create_server(("127.0.0.1", port))
    except OSError as exc:  # the port is taken (often: another `image-gen mcp --http`), or not ours to use
        raise UsageError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror})", "pick another --port (0 is any free one)"
        ) from None
    port = int(sock.getsockname()[1])
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    security = TransportSecuritySettings(
        allowed_hosts=sorted(hosts), allowed_origins=sorted(f"http://{host}" for host in hosts)
    )
    app = server.streamable_http_app(streamable_http_path=PATH, transport_security=security, host="127.0.0.1")
    config = uvicorn.Config(Guard(app, token, hosts), log_level="warning", access_log=False, lifespan="on")
    announce(f"http://127.0.0.1:{port}{PATH}")
    uvicorn.Server(config).run(sockets=[sock])
