"""What every benchmark needs, once: progress lines, canned pictures, a clean child, its timing, the README.

Each suite measures something different, but they all start real `python -m image_gen_local` processes in an
environment the user's own settings cannot reach, feed servers canned pictures, say what they are doing on
stderr, and keep their own "## ... last results" section of bench/README.md. Those pieces live here, so a
suite reads as its measurement only and no suite imports another's plumbing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
LAUNCH = HERE / "launch.py"
MARKER = re.compile(r"^\[IMAGE_PATH\](.+)\[/IMAGE_PATH\]$", re.MULTILINE)


def teller(name: str) -> Callable[[str], None]:
    """A suite's progress lines, on stderr (stdout carries its results)."""

    def say(message: str) -> None:
        print(f"{name} bench: {message}", file=sys.stderr, flush=True)

    return say


# ---------------------------------------------------------------------------------------- the README


def replace_section(title: str, body: str, readme: Path = README) -> None:
    """Replace the section `## {title}` (up to the next `## ` heading) with `body`; append if absent."""
    heading = f"## {title}"
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    section = [heading, "", *body.strip("\n").splitlines(), ""]
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section
    else:
        lines += ["", *section]
    readme.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")


def publish(title: str, section: str, quick: bool, say: Callable[[str], None]) -> None:
    """Print a benchmark's results; unless `quick`, write them into their section of bench/README.md."""
    print(f"## {title}\n\n{section}")
    if not quick:
        replace_section(title, section)
        say(f"wrote {README}")


# ---------------------------------------------------------------------------------------- canned pictures


def canned_png(size: tuple[int, int], heavy: bool = True) -> bytes:
    """A PNG for canned answers. Heavy: as big as a real Gemini one (noise over a gradient, which deflate
    cannot flatten), for what decoding and saving cost; light: one flat colour, for what the rest costs."""
    out = io.BytesIO()
    if not heavy:
        Image.new("RGB", size, (40, 90, 160)).save(out, "PNG")
        return out.getvalue()
    ramp = Image.linear_gradient("L")
    base = Image.merge("RGB", [ramp.rotate(angle).resize(size) for angle in (0, 90, 180)])
    noise = Image.merge("RGB", [Image.effect_noise(size, 10) for _ in range(3)])
    Image.blend(base, noise, 0.2).save(out, "PNG", compress_level=1)
    return out.getvalue()


def images_answer(png: bytes) -> str:
    """The images-API answer Antigravity gives for response_format=b64_json."""
    return json.dumps({"created": int(time.time()), "data": [{"b64_json": base64.b64encode(png).decode()}]})


# ---------------------------------------------------------------------------------------- children


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """This environment minus anything that would change the client's behaviour (IMAGE_GEN_*, OPENAI_*, a
    user config file), with its cache and history under `home`, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGE_GEN_", "OPENAI_"))}
    env["IMAGE_GEN_CACHE_DIR"] = str(home / "cache")
    env["XDG_CONFIG_HOME"] = str(home / "config")  # no user config.toml
    env["IMAGE_GEN_DATA_DIR"] = str(home / "data")  # its own history, not the user's
    env.update(settings)
    return env


def client_env(tmp: Path, url: str, out: Path) -> dict[str, str]:
    """A clean client talking to `url`, saving into `out`."""
    return clean_env(tmp, IMAGE_GEN_BASE_URL=url, IMAGE_GEN_OUTPUT_DIR=str(out))


def batch_cmd(jobs: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "image_gen_local", "batch", str(jobs), *flags]


@dataclass
class Child:
    seconds: float
    rss_mib: float
    code: int
    pictures: int  # result markers on its stdout
    stderr: str


def spawn(argv: list[str], env: dict[str, str], cwd: Path) -> Child:
    """Run a client through bench/launch.py, so its peak RSS is its own (see bench/README.md)."""
    request = json.dumps({"argv": argv, "cwd": str(cwd)})
    done = subprocess.run(
        [sys.executable, str(LAUNCH)],
        input=request + "\n",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    return Child(
        answer["seconds"],
        answer["rss_kib"] / 1024,
        answer["code"],
        len(MARKER.findall(answer["stdout"])),
        answer["stderr"],
    )


def startup(tmp: Path) -> float:
    """A process that imports what the client imports and exits: what every run pays before its work."""
    code = "import openai, PIL.Image, image_gen_local.cli, image_gen_local.batch"
    return min(spawn([sys.executable, "-c", code], dict(os.environ), tmp).seconds for _ in range(3))
