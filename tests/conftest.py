"""Shared fixtures: a real emulator on a free loopback port, isolated config/cache/output folders."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from image_gen_local.cli import main
from image_gen_local.emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parent.parent
MARKER_PREFIX, MARKER_SUFFIX = "[IMAGE_PATH]", "[/IMAGE_PATH]"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config, cache or output folder, or a real OpenAI key."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("IMAGE_GEN_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "IMAGE_GEN_BASE_URL",
        "IMAGE_GEN_API_KEY",
        "IMAGE_GEN_MODEL",
        "IMAGE_GEN_OUTPUT_DIR",
        "IMAGE_GEN_ROUTE",
        "IMAGE_GEN_TIMEOUT",
        "IMAGE_GEN_CONFIG",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Iterator:
    started: list[Emulator] = []

    def make(**config) -> Emulator:
        emu = Emulator(EmulatorConfig(**config)).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def paths(self) -> list[Path]:
        return markers(self.stdout)

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def markers(stdout: str) -> list[Path]:
    """Every stdout line must be a marker line; return their paths."""
    paths = []
    for line in stdout.splitlines():
        assert line.startswith(MARKER_PREFIX) and line.endswith(MARKER_SUFFIX), f"stray stdout line: {line!r}"
        paths.append(Path(line[len(MARKER_PREFIX) : -len(MARKER_SUFFIX)]))
    return paths


def cli(*args: str, stdin: str = "") -> Run:
    """Run the CLI in-process (fast) with real stdout/stderr streams."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Run(int(code), out.getvalue(), err.getvalue())


def _script_env(env: dict[str, str] | None) -> dict[str, str]:
    """The test's environment without PYTHONPATH, so the script finds the package the way the skill does."""
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(env or {})
    return full


def run_script(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, **kwargs
) -> subprocess.CompletedProcess:
    """Run scripts/gen.py exactly as the skill does: a new python3 process from the skill folder."""
    return subprocess.run(
        [sys.executable, "scripts/gen.py", *args],
        cwd=ROOT,
        env=_script_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def start_script(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """scripts/gen.py in the background, for tests that signal it."""
    return subprocess.Popen(
        [sys.executable, "scripts/gen.py", *args],
        cwd=ROOT,
        env=_script_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def picture(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def png_bytes(size: tuple[int, int], colour: str = "teal", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def write_picture(path: Path, size: tuple[int, int], fmt: str = "PNG", **save) -> Path:
    Image.new("RGB", size, "orange").save(path, fmt, **save)
    return path
