"""Every fault x {text-to-image, image-to-image, -n 3}: the documented outcome, and a clean output folder.

Real HTTP, real SDK, real Pillow; only the retry waits are shortened (RetryPolicy), so the matrix runs in
seconds. The table below is the one in the README ("Faults and what the client does").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from helpers import write_picture
from image_gen_local.batch import run_request
from image_gen_local.config import Settings
from image_gen_local.emulator import Emulator
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
}
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
        result, said = run(emu, out, mode, tmp_path, timeout=1.5 if fault.startswith("slow") else 30)
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
