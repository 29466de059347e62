"""Remake docs/gallery.jpg, the README's picture of `image-gen gallery`: `python docs/screenshot.py`.

Twelve pictures are made through the real command against the bundled emulator (so they are synthetic and
say so), in a private history; the gallery serves them and Debian's Chromium, driven by Playwright, takes
the screenshot. Needs the `test` extra and `apt-get install chromium`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from image_gen_local.emulator import Emulator

OUT = Path(__file__).resolve().parent / "gallery.jpg"
PROMPTS = [
    ("a red fox in fresh snow, watercolor", "3:2"),
    ("the same fox at night under the northern lights", "16:9"),
    ("a lighthouse on a cliff at sunset, oil painting", "4:3"),
    ("a cute cat on a windowsill, cartoon style", "1:1"),
    ("the cat as a Japanese anime character", "3:4"),
    ("snowy mountains at sunrise, photorealistic", "21:9"),
    ("a cozy reading nook with plants, isometric 3D", "1:1"),
    ("a koi pond seen from above, ink wash", "9:16"),
    ("a retro robot serving tea, pixel art", "4:3"),
    ("a whale breaching at dawn, watercolor", "16:9"),
    ("an owl reading a map by candlelight, storybook", "2:3"),
    ("a tiny village inside a glass bottle, macro photo", "1:1"),
]


def main() -> int:
    with tempfile.TemporaryDirectory() as temp, Emulator() as emulator:
        env = {
            **os.environ,
            "XDG_DATA_HOME": str(Path(temp) / "data"),
            "IMAGE_GEN_CACHE_DIR": str(Path(temp) / "cache"),
            "IMAGE_GEN_OUTPUT_DIR": str(Path(temp) / "pictures"),
            "IMAGE_GEN_BASE_URL": emulator.base_url,
        }
        command = [sys.executable, "-m", "image_gen_local"]
        for prompt, ratio in PROMPTS:
            subprocess.run(
                [*command, prompt, "--aspect-ratio", ratio], env=env, check=True, capture_output=True
            )
        gallery = subprocess.Popen([*command, "gallery"], env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert gallery.stdout is not None
            address = gallery.stdout.readline().strip()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(address)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(OUT), type="jpeg", quality=80)
                browser.close()
        finally:
            gallery.terminate()
            gallery.wait(timeout=20)
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
