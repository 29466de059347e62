"""The baseline: the short script a user would write instead of installing image-gen-local.

One `images.generate` call through the openai SDK, base64-decode, write, print the same marker line as
`image-gen`. No checks, no retries, no decoding of the picture: the cheapest correct-looking client, so
`bench/run.py` can show what our extra care costs. Usage: bare.py BASE_URL OUT_DIR RATIO TIER PROMPT
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import openai


def main(base_url: str, out_dir: str, ratio: str, tier: str, prompt: str) -> int:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    answer = client.images.generate(
        model="gemini-3-pro-image",
        prompt=prompt,
        n=1,
        size=ratio,  # type: ignore[arg-type]  # Antigravity takes ratios here
        response_format="b64_json",
        extra_body={"image_size": tier, "style": "none"},
    )
    data = base64.b64decode(answer.data[0].b64_json or "")  # type: ignore[index]
    path = (Path(out_dir) / "bare.png").resolve()
    path.write_bytes(data)
    print(f"[IMAGE_PATH]{path}[/IMAGE_PATH]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
