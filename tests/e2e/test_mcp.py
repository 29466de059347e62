"""`image-gen mcp` through the official MCP SDK client, over stdio and streamable HTTP, against the emulator.

The server is a real subprocess (`python -m image_gen_local mcp`), the client is the SDK's own `Client`,
the pictures come from the real emulator over HTTP: nothing is stubbed.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from helpers import ROOT, cli, png_bytes, start_server
from image_gen_local.emulator import Reply
from image_gen_local.mcp_tools import prompt_rules
from image_gen_local.request import SavedImage

KEY = "sk-Mcp-Secret-4e5f6a7b8c9d"
TOKEN = "test-token-0123456789"
PICTURE_TOOLS = {"generate_image", "edit_image"}
# a recorded picture: its record carries every field the document can hold, the history id included
RECORDED = SavedImage(Path("cat.png"), 1, 1, "image/png", "m", "images", 0.0, 0, id=1)


def server_env(base_url: str, out: Path, **extra: str) -> dict[str, str]:
    """What an MCP client's configuration passes: only these reach the server (plus HOME, PATH...)."""
    env = {
        "IMAGE_GEN_BASE_URL": base_url,
        "IMAGE_GEN_OUTPUT_DIR": str(out),
        "IMAGE_GEN_CACHE_DIR": os.environ["IMAGE_GEN_CACHE_DIR"],
        "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"],
    }
    return {**env, **extra}


def run(scenario: Callable[[], Any]) -> None:
    anyio.run(scenario)


@asynccontextmanager
async def stdio(
    env: dict[str, str], *args: str, cwd: Path | None = None, errlog: Any = None, mode: str = "auto"
) -> AsyncIterator[Client]:
    command = ["-m", "image_gen_local", "mcp", "--progress-every", "1", *args]
    params = StdioServerParameters(command=sys.executable, args=command, env=env, cwd=cwd or ROOT)
    async with Client(stdio_client(params, errlog=errlog or sys.stderr), mode=mode) as client:
        yield client


class Progress:
    """A progress callback that keeps what arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str | None]] = []
        self.first = anyio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, message))
        self.first.set()


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def image_requests(emu) -> list:
    return [r for r in emu.requests if r.route in ("generations", "edits", "chat")]


def error_text(result) -> str:
    assert result.is_error, result
    [block] = result.content
    return block.text


# ------------------------------------------------------------------------------------------------ stdio


def test_the_tools_and_the_prompt_are_listed_with_their_rules(emulator, out_dir):
    async def scenario() -> None:
        async with stdio(server_env(emulator.base_url, out_dir)) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == PICTURE_TOOLS | {"list_images", "server_status"}
            for name in PICTURE_TOOLS:
                schema = tools[name].input_schema["properties"]
                assert {
                    "prompt",
                    "aspect_ratio",
                    "resolution",
                    "size",
                    "count",
                    "model",
                    "output_dir",
                } <= set(schema)
                assert "English prompt" in tools[name].description and "style" in tools[name].description
                assert tools[name].output_schema["properties"]["images"]
                # the schema a client sees lists exactly what a picture's record in the document holds
                record = tools[name].output_schema["$defs"]["ImageRecord"]["properties"]
                assert set(record) == set(RECORDED.as_json())
            assert "images" in tools["edit_image"].input_schema["required"]
            assert "describe the main content" in tools["edit_image"].description
            [prompt] = (await client.list_prompts()).prompts
            got = await client.get_prompt(prompt.name, {"wish": "make my cat look like an anime"})
            text = got.messages[0].content.text
            assert text.startswith(prompt_rules()) and "make my cat look like an anime" in text
            assert "Never pass the user's words through as the prompt" in text

    run(scenario)


def test_a_picture_is_made_with_its_record_a_link_and_a_small_preview(make_emulator, out_dir):
    emu = make_emulator(latency=1.5)

    async def scenario() -> None:
        async with stdio(server_env(emu.base_url, out_dir)) as client:
            progress = Progress()
            result = await client.call_tool(
                "generate_image",
                {"prompt": "a lighthouse at dusk, watercolor", "aspect_ratio": "16:9", "resolution": "2k"},
                progress_callback=progress,
            )
            assert not result.is_error, result.content
            document = result.structured_content
            [record] = document["images"]
            assert document["ok"] and document["exit_code"] == 0
            path = Path(record["path"])
            assert path.parent == out_dir.resolve() and path.is_file()
            assert (record["width"], record["height"], record["mime"]) == (2752, 1536, "image/png")
            assert record["route"] == "images" and record["model"] == "gemini-3-pro-image"
            kinds = [block.type for block in result.content]
            assert kinds == ["text", "resource_link", "image"]
            link, preview = result.content[1], result.content[2]
            assert link.uri == path.as_uri() and link.mime_type == "image/png"
            small = Image.open(io.BytesIO(base64.b64decode(preview.data)))
            assert preview.mime_type == "image/jpeg" and small.format == "JPEG"
            assert max(small.size) == 512
            # progress arrived while the picture was being made, not only at the start
            assert len(progress.seen) >= 2 and progress.seen[-1][0] > progress.seen[0][0]
            assert any("attempt 1 via /images/generations" in (m or "") for _, m in progress.seen)

            full = await client.call_tool("generate_image", {"prompt": "a boat", "preview": "full"})
            assert (
                base64.b64decode(full.content[2].data)
                == Path(full.structured_content["images"][0]["path"]).read_bytes()
            )
            none = await client.call_tool("generate_image", {"prompt": "a boat", "preview": "none"})
            assert [block.type for block in none.content] == ["text", "resource_link"]

    run(scenario)


def test_an_edit_finds_relative_pictures_and_makes_missing_folders(emulator, tmp_path, out_dir):
    work = tmp_path / "project"
    work.mkdir()
    (work / "photo.jpg").write_bytes(png_bytes((600, 800), fmt="JPEG"))

    async def scenario() -> None:
        async with stdio(server_env(emulator.base_url, out_dir), cwd=work) as client:
            first = await client.call_tool(
                "edit_image",
                {"prompt": "the same woman, anime style", "images": "photo.jpg", "output_dir": "anime/v1"},
            )
            assert not first.is_error, first.content
            [made] = first.structured_content["images"]
            assert Path(made["path"]).parent == (out_dir / "anime" / "v1").resolve()
            assert (made["width"], made["height"]) == (896, 1200)  # the input's 3:4, like the CLI
            # a file name an earlier result gave, found in the output folder; a file:// URI works too
            name = Path(made["path"]).relative_to(out_dir.resolve())
            again = await client.call_tool(
                "edit_image",
                {"prompt": "as an oil painting", "images": [str(name), (work / "photo.jpg").as_uri()]},
            )
            assert not again.is_error, again.content
            assert [len(r.files) for r in emulator.requests if r.route == "edits"] == [1, 2]
            listed = await client.call_tool("list_images", {"output_dir": "anime/v1"})
            assert [item["path"] for item in listed.structured_content["images"]] == [made["path"]]
            history = await client.call_tool("edit_image", {"prompt": "again", "images": ["@last"]})
            assert "history" in error_text(history) and "[exit 2: usage]" in error_text(history)

    run(scenario)


def test_each_failure_is_a_tool_error_with_its_fix_and_class(make_emulator, tmp_path, out_dir):
    emu = make_emulator()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = server_env(emu.base_url, out_dir, IMAGE_GEN_TIMEOUT="3")
    cases: list[tuple[dict[str, Any], tuple[str, ...], str]] = [
        ({"prompt": "x", "size": "huge"}, (), "[exit 2: usage]"),
        ({"prompt": "x", "count": 0}, (), "[exit 2: usage]"),
        ({"prompt": "x", "preview": "big"}, (), "[exit 2: usage]"),
        ({"prompt": "x", "images": ["nowhere.png"]}, (), "[exit 7: bad_input]"),
        ({"prompt": "x", "output_dir": str(blocker / "sub")}, (), "[exit 9: output]"),
        ({"prompt": "x"}, ("401",), "[exit 4: auth]"),
        ({"prompt": "x"}, ("503-capacity",) * 40, "[exit 5: quota]"),
        ({"prompt": "x"}, ("slow:30",), "[exit 8: deadline]"),
        ({"prompt": "x"}, ("502-no-image", "502-no-image"), "[exit 6: no_image]"),
    ]

    async def scenario() -> None:
        async with stdio(env) as client:
            for arguments, faults, expected in cases:
                before = len(image_requests(emu))
                emu.faults.clear()  # what a storm left unused does not spill into the next case
                if faults:
                    emu.script(*faults)
                tool = "edit_image" if "images" in arguments else "generate_image"
                result = await client.call_tool(tool, arguments)
                text = error_text(result)
                assert expected in text and "; " in text and "Traceback" not in text, text
                assert result.structured_content["errors"][0]["class"] in expected
                if not faults:  # refused before any request
                    assert len(image_requests(emu)) == before, arguments
            before = len(image_requests(emu))
            wrong_type = await client.call_tool("generate_image", {"prompt": ["not", "text"]})
            text = error_text(wrong_type)  # the SDK's schema check, in our one line
            assert "argument 'prompt'" in text and text.endswith("[exit 2: usage]") and "\n" not in text
            assert wrong_type.structured_content["errors"][0]["class"] == "usage"
            limit = error_text(await client.call_tool("list_images", {"limit": "abc"}))
            assert "argument 'limit'" in limit and "[exit 2: usage]" in limit and "pydantic" not in limit
            assert len(image_requests(emu)) == before
            assert not files_in(out_dir)

    run(scenario)


def test_an_unreachable_server_is_a_tool_error_naming_the_fix(out_dir):
    async def scenario() -> None:
        async with stdio(server_env("http://127.0.0.1:9", out_dir)) as client:
            text = error_text(await client.call_tool("generate_image", {"prompt": "a cat"}))
            assert "[exit 3: unreachable]" in text
            status = await client.call_tool("server_status", {})
            assert not status.structured_content["ok"] and status.structured_content["exit_code"] == 3
            assert "NOT ready" in status.content[0].text

    run(scenario)


def test_a_cancelled_call_stops_its_request_and_leaves_nothing(make_emulator, out_dir):
    emu = make_emulator(faults="slow:60")  # the first picture would take a minute; the next are quick
    log = out_dir.parent / "server.log"

    async def scenario() -> None:
        with log.open("w") as errlog:
            await cancel_then_make(errlog)

    async def cancel_then_make(errlog: Any) -> None:
        async with stdio(server_env(emu.base_url, out_dir), "--concurrency", "1", errlog=errlog) as client:
            progress = Progress()
            async with anyio.create_task_group() as group:

                async def slow() -> None:
                    await client.call_tool("generate_image", {"prompt": "slow"}, progress_callback=progress)

                group.start_soon(slow)
                with anyio.fail_after(30):
                    await progress.first.wait()
                    while not image_requests(emu):
                        await anyio.sleep(0.05)
                group.cancel_scope.cancel()
            # One request slot in all: this call gets it only because the cancelled request let go.
            quick = await client.call_tool("generate_image", {"prompt": "quick"}, read_timeout_seconds=30)
            assert not quick.is_error, quick.content
            [made] = quick.structured_content["images"]
            assert files_in(out_dir) == [Path(made["path"])]  # nothing of the cancelled call, not even a temp

    run(scenario)
    said = log.read_text()
    assert "broke" not in said and "retrying" not in said, said  # a cancel is not a broken connection


def test_calls_at_once_share_one_throttle(make_emulator, out_dir):
    emu = make_emulator(latency=0.5)
    results: list[Any] = []

    async def scenario() -> None:
        async with stdio(server_env(emu.base_url, out_dir), "--concurrency", "2") as client:

            async def one(n: int) -> None:
                results.append(
                    await client.call_tool("generate_image", {"prompt": f"picture {n}", "count": 2})
                )

            async with anyio.create_task_group() as group:
                for n in range(3):
                    group.start_soon(one, n)

    run(scenario)
    assert all(not r.is_error for r in results)
    paths = {image["path"] for r in results for image in r.structured_content["images"]}
    assert len(paths) == 6 and len(files_in(out_dir)) == 6
    spans = [(r.received, r.answered) for r in image_requests(emu)]
    at_once = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert at_once == 2  # three calls of two pictures each, never more than the one throttle allows


def test_the_handshake_works_the_way_todays_clients_do_it(emulator, out_dir):
    async def scenario() -> None:
        async with stdio(server_env(emulator.base_url, out_dir), mode="legacy") as client:
            assert client.server_info.name == "image-gen-local"
            assert not (await client.call_tool("generate_image", {"prompt": "a cat"})).is_error

    run(scenario)


def test_the_key_appears_in_no_output(make_emulator, tmp_path, out_dir):
    emu = make_emulator(api_key=KEY)
    log = tmp_path / "server.log"
    texts: list[str] = []

    async def scenario() -> None:
        with log.open("w") as errlog:
            async with stdio(
                server_env(emu.base_url, out_dir, IMAGE_GEN_API_KEY=KEY), "-v", errlog=errlog
            ) as client:
                calls = [
                    ("generate_image", {"prompt": "ok"}),
                    ("generate_image", {"prompt": "denied"}),
                    ("server_status", {}),
                    ("list_images", {}),
                ]
                for name, arguments in calls:
                    if arguments.get("prompt") == "denied":
                        emu.script(Reply(400, f"invalid token {KEY} for this account"))
                    result = await client.call_tool(name, arguments)
                    texts.append(result.model_dump_json())

    run(scenario)
    texts.append(log.read_text())
    assert any('"ok":true' in text.replace(" ", "") for text in texts)
    for text in texts:
        assert KEY not in text
    for path in files_in(out_dir) + files_in(Path(os.environ["IMAGE_GEN_CACHE_DIR"])):
        assert KEY.encode() not in path.read_bytes()


def test_without_the_sdk_the_command_says_how_to_install_it():
    code = (
        "import sys; sys.modules['mcp'] = None; from image_gen_local.cli import main; sys.exit(main(['mcp']))"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert process.returncode == 3 and process.stdout == ""
    assert "pip install 'image-gen-local[mcp]'" in process.stderr and "Traceback" not in process.stderr


# ------------------------------------------------------------------------------------------------- HTTP


@pytest.fixture
def http_server(emulator, out_dir) -> Iterator[tuple[str, list[str]]]:
    """`image-gen mcp --http --port 0` in a process; yields its URL and its stderr lines so far."""
    env = {**os.environ, **server_env(emulator.base_url, out_dir, IMAGE_GEN_MCP_TOKEN=TOKEN)}
    argv = [sys.executable, "-m", "image_gen_local", "mcp", "--http", "--port", "0", "--progress-every", "1"]
    process, lines = start_server(argv, env, "serving streamable HTTP at")
    try:
        [announced] = [line for line in lines if "serving streamable HTTP at" in line]
        url = announced.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        yield url, lines
    finally:
        process.terminate()
        process.wait(timeout=10)


@asynccontextmanager
async def http(url: str, token: str = TOKEN) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as session,
        Client(streamable_http_client(url, http_client=session)) as client,
    ):
        yield client


def test_over_http_pictures_are_made_and_edited_with_progress(http_server, emulator, out_dir):
    url, _ = http_server

    async def scenario() -> None:
        async with http(url) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} >= PICTURE_TOOLS
            progress = Progress()
            made = await client.call_tool(
                "generate_image", {"prompt": "a red fox"}, progress_callback=progress
            )
            assert not made.is_error, made.content
            assert progress.seen
            path = made.structured_content["images"][0]["path"]
            edited = await client.call_tool(
                "edit_image", {"prompt": "the fox, anime style", "images": [path]}
            )
            assert not edited.is_error, edited.content
            assert len(files_in(out_dir)) == 2

    run(scenario)


def test_over_http_a_wrong_token_or_host_is_refused(http_server):
    url, lines = http_server
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with httpx2.Client(timeout=10) as plain:
        assert plain.post(url, json=hello).status_code == 401
        assert plain.post(url, json=hello, headers={"Authorization": "Bearer wrong"}).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        host = plain.post(url, json=hello, headers={**good, "Host": "evil.example:80"})
        assert host.status_code == 421
    assert not any(TOKEN in line for line in lines)  # a token given by the user is never echoed

    async def scenario() -> None:
        with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own error for a 401
            async with http(url, token="wrong") as client:
                await client.list_tools()

    run(scenario)


def test_a_port_in_use_is_a_usage_error_not_a_bug(http_server):
    url = http_server[0]
    port = url.split(":")[2].split("/")[0]
    run = cli("mcp", "--http", "--port", port, "--token", TOKEN)
    assert run.code == 2 and run.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr and "--port" in run.stderr
    assert "Traceback" not in run.stderr and "please report it" not in run.stderr
