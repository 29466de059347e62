"""The MCP server in-process, with the SDK's own client and the real engine against the emulator: the
moments a subprocess test cannot catch reliably."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
from mcp import Client

from image_gen_local import mcp_server
from image_gen_local.config import Settings
from image_gen_local.mcp_tools import Service


def test_a_call_cancelled_while_its_previews_are_made_leaves_no_picture(emulator, out_dir, monkeypatch):
    delivering = anyio.Event()
    real = mcp_server._delivered

    def slow_delivery(result: Any, preview: str) -> Any:
        """The previews take a while, like 4K ones do; the client cancels meanwhile."""
        anyio.from_thread.run_sync(delivering.set)
        time.sleep(2)  # not a timing assertion: the time a 4K preview takes, to cancel within
        return real(result, preview)

    monkeypatch.setattr(mcp_server, "_delivered", slow_delivery)
    settings = Settings(base_url=emulator.base_url, output_dir=out_dir)
    server = mcp_server.build_server(Service(settings, dict(os.environ)))

    async def scenario() -> None:
        async with Client(server) as client:
            async with anyio.create_task_group() as group:
                group.start_soon(client.call_tool, "generate_image", {"prompt": "a cat"})
                with anyio.fail_after(30):
                    await delivering.wait()
                assert len(list(out_dir.iterdir())) == 1  # the picture was saved before the cancellation
                group.cancel_scope.cancel()
            with anyio.fail_after(30):
                while list(Path(out_dir).iterdir()):
                    await anyio.sleep(0.05)

    anyio.run(scenario)
    assert list(out_dir.iterdir()) == []
