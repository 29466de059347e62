#!/usr/bin/env python3
# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "openai>=1.40",
#     "pillow>=10.1",
#     "pillow-heif>=0.16",
#     "tqdm>=4.60",
#     "tomli>=2.0; python_version < '3.11'",
#     "anyascii>=0.3",
#     "typing-extensions>=4.7",
# ]
# ///
"""The skill's entry point: `python3 scripts/gen.py 'a cute cat, cartoon style' [options]`.

Works from the skill folder without installing the package (it uses ../src), with `uv run`, and with the
package installed. Same options and exit codes as `image-gen`; see `--help`.
"""

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent / "src"
if (_SRC / "image_gen_local").is_dir():
    sys.path.insert(0, str(_SRC))

from image_gen_local.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
