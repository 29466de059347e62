"""The README's examples run as written: every `image-gen` line of its bash blocks, against the emulator.

A newcomer copies these first; if one of them fails, the README lies. The lines run through a real shell
with the installed `image-gen` command, in a folder holding the files they name (photo.jpg, story.jsonl),
and, for the lines about earlier pictures (history, show, again, `@last`), a history of two pictures, one of
them the cover.jpg they name.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from helpers import start_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SEEDS = ["image-gen 'a red fox in the snow'", "image-gen 'the same fox, but at night' -o cover.jpg"]
STORY = [  # the README's own sample job file, with the picture it names
    {"prompt": "a fox waking up in a forest, watercolor", "aspect_ratio": "16:9", "resolution": "2k"},
    {"prompt": "the fox as a Japanese anime character", "image": ["fox.jpg"], "count": 2},
    {"prompt": "the fox asleep under the stars", "output": "ending.png"},
]


def readme_commands() -> list[str]:
    """Every line of a ```bash block that runs image-gen, its trailing comment removed."""
    text = README.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if re.search(r"(^|\| )image-gen\b", command):
                lines.append(command)
    return lines


SERVERS = [command for command in readme_commands() if command.startswith("image-gen mcp")]


def test_the_readme_has_examples_to_run():
    assert len(readme_commands()) >= 8
    assert SERVERS == ["image-gen mcp", "image-gen mcp --http"]


def readme_env(emulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        IMAGE_GEN_BASE_URL=emulator.base_url,
        IMAGE_GEN_OUTPUT_DIR=str(tmp_path / "pictures"),
    )
    env["BROWSER"] = "true"  # `--open` runs `true`, not a browser
    return env


@pytest.mark.parametrize("command", [c for c in readme_commands() if c not in SERVERS])
def test_a_readme_example_runs_as_written(emulator, tmp_path, command):
    Image.new("RGB", (1200, 900), "teal").save(tmp_path / "photo.jpg")
    Image.new("RGB", (800, 600), "orange").save(tmp_path / "fox.jpg")
    (tmp_path / "story.jsonl").write_text(
        "\n".join(json.dumps(job) for job in STORY) + "\n", encoding="utf-8"
    )
    env = readme_env(emulator, tmp_path)
    earlier = re.search(r"@|image-gen (history|show|again|gallery)", command)
    for line in SEEDS if earlier else []:
        subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=True
        )
    if re.match(r"image-gen gallery(?!.*--export)", command):  # a server: it starts, says where, stops
        return _serves(command, tmp_path, env)
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    results = (
        "[IMAGE_PATH]",
        '"ok": true',
        "[ok]",
        '"recipe": {',
        "prompt     ",
        "   @1  id:2",
        "index.html",
    )
    assert any(result in proc.stdout for result in results), proc.stdout


async def _one_picture(client: Client) -> None:
    result = await client.call_tool("generate_image", {"prompt": "a cat from the README"})
    assert not result.is_error, result.content


def test_the_readmes_stdio_server_serves_as_written(emulator, tmp_path):
    params = StdioServerParameters(
        command="bash", args=["-c", "image-gen mcp"], env=readme_env(emulator, tmp_path)
    )

    async def scenario() -> None:
        async with Client(params) as client:
            await _one_picture(client)

    anyio.run(scenario)


def test_the_readmes_http_server_serves_as_written(emulator, tmp_path):
    """The token it makes up is printed once on stderr; a client that sends it gets pictures."""
    process, lines = start_server(
        ["bash", "-c", "exec image-gen mcp --http"],
        readme_env(emulator, tmp_path),
        "serving streamable HTTP at",
    )
    try:
        token = next(line for line in lines if "clients must send this one:" in line).split(": ")[-1].strip()
        url = next(line for line in lines if "serving" in line).split(" at ")[1].split()[0]
        assert url == "http://127.0.0.1:8046/mcp"

        async def scenario() -> None:
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as session,
                Client(streamable_http_client(url, http_client=session)) as client,
            ):
                await _one_picture(client)

        anyio.run(scenario)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _serves(command: str, folder: Path, env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        address = proc.stdout.readline()
        assert address.startswith("http://127.0.0.1:") and "?t=" in address, proc.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=20)
