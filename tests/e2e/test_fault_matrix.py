"""Every fault x {text-to-image, image-to-image, -n 3}: the documented outcome, and a clean output folder.

Real HTTP, real SDK, real Pillow; only the retry waits are shortened (RetryPolicy), so the matrix runs in
seconds. The tables below are the README's ("Faults and what the client does", both tables): OUTCOMES
with the fault on the first image request, ALWAYS with a hostile fault on every request, through the
command line, where no key piece, traceback or escape sequence may reach the output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from helpers import cli, write_picture
from image_gen_local.batch import run_request
from image_gen_local.config import Settings
from image_gen_local.emulator import Emulator, EmulatorConfig
from image_gen_local.emulator.faults import CATALOGUE
from image_gen_local.engine import Generator
from image_gen_local.files import TEMP_PREFIX
from image_gen_local.request import ImageRequest, Result, prepare
from image_gen_local.retry import RetryPolicy

FAST = RetryPolicy(first_retry=0.01, first_delay=0.01, rate_limit_delay=0.01, capacity_delay=0.01)

# fault -> (exit code, words the error line must contain)
OUTCOMES: dict[str, tuple[int, str | None]] = {
    "429-retry-delay:0.05": (0, None),
    "429-retry-after:0.05": (0, None),
    "429-exhausted": (0, None),
    "503-capacity": (0, None),
    "500": (0, None),
    "reset-before": (0, None),
    "reset-during": (0, None),
    "truncated-json": (0, None),
    "502-no-image": (0, None),
    "empty-data": (0, None),
    "partial": (0, None),
    "bad-base64": (0, None),
    "corrupt-png": (0, None),
    "drafts": (0, None),
    "502-no-quota": (0, None),
    "404-model": (0, None),
    "content-filter": (6, "rephrase"),
    "bomb": (6, "decompression bomb"),
    "huge": (6, "cap"),
    "slow:4": (8, "--timeout"),
    "503-disabled": (3, "start the proxy service"),
    "html": (3, "HTML page"),
    "401": (4, "--api-key"),
    "403-validation": (4, "Accounts page"),
    "413": (7, "smaller --image"),
    "trickle": (8, "--timeout"),
    "redirect-loop": (3, "redirect"),
    "hang-download": (8, "--timeout"),
    "file-url": (6, "file"),
    "gzip-bomb": (6, "cap"),
    "deflate-bomb": (6, "cap"),
    "500-gzip-bomb": (0, None),
    "lying-encoding": (0, None),
    "error-cut-short": (4, "--api-key"),
    "wrong-shape": (0, None),
    "models-wrong-shape": (0, None),
    "models-slow": (8, "--timeout"),
    "nested-json": (0, None),
    "markdown-bait": (0, None),
    "error-in-200": (0, None),
    "429-zero-wait": (0, None),
    "key-echo": (4, "--api-key"),
    "terminal-escapes": (3, "base-url"),
    "rotated": (0, None),
    "cmyk": (0, None),
    "16-bit": (0, None),
    "animated": (0, None),
    "transparent": (0, None),
    "degenerate": (0, None),
}
DEADLINE = ("slow", "trickle", "hang-download", "models-slow")  # these run with a 1.5 s deadline
STOP_ALL = {3, 4, 7, 8}  # with -n, these stop the remaining pictures too


def test_the_matrix_covers_the_whole_catalogue():
    assert {spec.split(":")[0] for spec in OUTCOMES} == set(CATALOGUE)


def run(emu: Emulator, out: Path, mode: str, tmp_path: Path, timeout: float) -> tuple[Result, list[str]]:
    settings = Settings(base_url=emu.base_url, output_dir=out, timeout=timeout)
    images = (write_picture(tmp_path / "input.jpg", (640, 480), "JPEG"),) if mode == "i2i" else ()
    request = ImageRequest("a lighthouse at dusk", images=images, count=3 if mode == "n3" else 1)
    said: list[str] = []
    generator = Generator(settings, warn=said.append, policy=FAST)
    try:
        return run_request(generator, prepare(request, settings), heartbeat=0), said
    finally:
        generator.close()


def check_folder(out: Path, result: Result) -> None:
    """Only complete pictures, exactly the ones reported, and no temporary files."""
    files = sorted(out.iterdir()) if out.exists() else []
    assert not [f for f in files if f.name.startswith(TEMP_PREFIX)]
    assert files == sorted(saved.path for saved in result.images)
    for path in files:
        with Image.open(path) as image:
            image.load()


@pytest.mark.parametrize("mode", ["t2i", "i2i", "n3"])
@pytest.mark.parametrize("fault", list(OUTCOMES))
def test_fault(fault: str, mode: str, tmp_path: Path) -> None:
    code, words = OUTCOMES[fault]
    out = tmp_path / "out"
    with Emulator() as emu:
        emu.script(fault)  # the first image request gets the fault; then the server behaves
        result, said = run(emu, out, mode, tmp_path, timeout=1.5 if fault.startswith(DEADLINE) else 30)
        fault_requests = [r for r in emu.requests if r.fault]
    assert fault_requests and fault_requests[0].fault == fault
    assert int(result.exit_code) == code, [str(e) for e in result.errors]
    if code:
        message = str(result.errors[0])
        assert words in message and "\n" not in message
    single = 1 if code == 0 else 0
    expected = single if mode != "n3" else 3 if code == 0 else 0 if code in STOP_ALL else 2
    assert len(result.images) == expected
    check_folder(out, result)
    if fault == "drafts":  # the final picture, not a 256x256 draft
        assert result.images[0].width == result.images[0].height == 1024 or mode == "i2i"
        assert result.images[0].width > 256
    if CATALOGUE[fault.split(":")[0]].recovery == "other-model":
        assert result.images[0].model == "gemini-3.1-flash-image"
        assert any("unavailable" in line for line in said)


# The hostile faults when they keep coming (`--fault-rate 1 --fault-pool NAME`), through the command line:
# fault -> exit code ("twice" or "at the deadline" in the README's table).
ALWAYS: dict[str, int] = {
    "trickle": 8,
    "redirect-loop": 3,
    "hang-download": 8,
    "file-url": 6,
    "gzip-bomb": 6,
    "deflate-bomb": 6,
    "500-gzip-bomb": 5,
    "lying-encoding": 6,
    "error-cut-short": 4,
    "wrong-shape": 6,
    "models-wrong-shape": 0,
    "models-slow": 8,
    "nested-json": 6,
    "markdown-bait": 6,
    "error-in-200": 5,
    "429-zero-wait": 5,
    "key-echo": 4,
    "terminal-escapes": 3,
    "rotated": 0,
    "cmyk": 0,
    "16-bit": 0,
    "animated": 0,
    "transparent": 0,
    "degenerate": 6,
}
KEY = "sk-drill-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("fault", list(ALWAYS))
def test_a_hostile_fault_that_keeps_coming_ends_with_its_documented_exit_code(fault, tmp_path):
    target = CATALOGUE[fault].target
    pool = {"fault_rate": 1.0, "fault_pool": fault} if target == "images" else {"faults": fault}
    with Emulator(EmulatorConfig(**pool)) as emu:
        run = cli(
            "a lighthouse",
            "--base-url",
            emu.base_url,
            "--output-dir",
            str(tmp_path / "out"),
            "--json",
            "--timeout",
            "2",
            "--api-key",
            KEY,
            "--aspect-ratio",
            "16:9",
        )
        assert any(r.fault == fault for r in emu.requests)
    assert run.code == ALWAYS[fault], run.stderr
    output = run.stdout + run.stderr
    assert not [KEY[i : i + 6] for i in range(len(KEY) - 5) if KEY[i : i + 6] in output]
    assert "Traceback" not in output and "\x1b" not in output
    saved = [Path(p["path"]) for p in run.json.get("images", [])] if run.code == 0 else []
    assert len(saved) == (run.code == 0)
    for path in saved:  # every answer form arrives as an upright 16:9 picture
        with Image.open(path) as image:
            assert image.size == (1376, 768) and getattr(image, "n_frames", 1) == 1
