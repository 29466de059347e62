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

import pytest
from PIL import Image

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


def test_the_readme_has_examples_to_run():
    assert len(readme_commands()) >= 8


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_example_runs_as_written(emulator, tmp_path, command):
    Image.new("RGB", (1200, 900), "teal").save(tmp_path / "photo.jpg")
    Image.new("RGB", (800, 600), "orange").save(tmp_path / "fox.jpg")
    (tmp_path / "story.jsonl").write_text(
        "\n".join(json.dumps(job) for job in STORY) + "\n", encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        IMAGE_GEN_BASE_URL=emulator.base_url,
        IMAGE_GEN_OUTPUT_DIR=str(tmp_path / "pictures"),
    )
    env["BROWSER"] = "true"  # `--open` runs `true`, not a browser
    earlier = re.search(r"@|image-gen (history|show|again|gallery)", command)
    for line in SEEDS if earlier else []:
        subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=True
        )
    if re.match(r"image-gen gallery(?!.*--export)", command):  # a server: it starts, says where, stops
        return _serves(command, tmp_path, env)
    proc = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
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
