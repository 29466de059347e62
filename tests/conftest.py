"""Shared fixtures: a real emulator on a free loopback port, isolated config/cache/output folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from image_gen_local.emulator import Emulator, EmulatorConfig


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config, cache or output folder, or a real OpenAI key."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
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
        "IMAGE_GEN_DATA_DIR",
        "IMAGE_GEN_HISTORY",
        "IMAGE_GEN_NO_HISTORY",
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
