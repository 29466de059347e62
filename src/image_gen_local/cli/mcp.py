"""`image-gen mcp`: serve the generator to MCP clients, over stdio (default) or streamable HTTP.

The SDK is imported only here, inside the function, and only this command needs it: it is the optional
extra `image-gen-local[mcp]`, and its absence is one line with the install command.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from ..errors import ExitCode, ImageGenError
from ..limiter import DEFAULT_CEILING, MAX_CEILING
from .args import Parser, connection_options, settings_from, whole
from .console import Console

DEFAULT_PORT = 8046
TOKEN_ENV = "IMAGE_GEN_MCP_TOKEN"
SDK_PARTS = {"mcp", "mcp_types", "uvicorn", "starlette", "pydantic", "anyio", "typing_extensions"}


def run_mcp(argv: Sequence[str], console: Console, env: Mapping[str, str]) -> int:
    parser = Parser(
        prog=f"{console.prog} mcp",
        description="Serve the generator to MCP clients: stdio by default (the client starts this command).",
        epilog="Tools: generate_image, edit_image, list_images, server_status; prompt: image_prompt_rules. "
        "See the README for each client's configuration.",
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP on 127.0.0.1 instead")
    parser.add_argument("--port", metavar="N", help=f"HTTP port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument(
        "--token", help=f"bearer token HTTP clients must send (env {TOKEN_ENV}; default: a new one)"
    )
    parser.add_argument(
        "--concurrency",
        metavar="N",
        help=f"the most requests at once over every call (default {DEFAULT_CEILING}); below it, how many "
        "the server takes is found",
    )
    parser.add_argument(
        "--progress-every", metavar="S", help="seconds between progress notifications (default 5)"
    )
    connection_options(parser)
    args = parser.parse_args(argv)
    console.verbose = args.verbose
    settings = settings_from(args, env)
    console.hide(settings.api_key)
    port = whole(args.port, "--port", 0, 65535)
    concurrency = whole(args.concurrency, "--concurrency", 1, MAX_CEILING) or DEFAULT_CEILING
    every = whole(args.progress_every, "--progress-every", 1, 60)
    token = args.token or env.get(TOKEN_ENV) or ""
    try:
        from .. import mcp_server, mcp_tools
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in SDK_PARTS:
            raise ImageGenError(
                f"`{console.prog} mcp` needs the MCP SDK, which is not installed ({exc.name} is missing)",
                "install it: pip install 'image-gen-local[mcp]' (or uv run --extra mcp ...)",
                ExitCode.UNREACHABLE,
            ) from None
        raise
    service = mcp_tools.Service(settings, env, concurrency, log=console.warn)
    server = mcp_server.build_server(service, float(every or mcp_tools.PROGRESS_SECONDS))
    if not args.http:
        mcp_server.serve_stdio(server)
        return ExitCode.OK
    if not token:
        token = secrets.token_urlsafe(24)
        console.say(f"mcp: no --token or {TOKEN_ENV} given; clients must send this one: {token}")

    def announce(url: str) -> None:
        console.say(f"mcp: serving streamable HTTP at {url} (Authorization: Bearer <token>); Ctrl-C stops")

    mcp_server.serve_http(server, DEFAULT_PORT if port is None else port, token, announce)
    return ExitCode.OK
