"""`python -m image_gen_local` is the `image-gen` command."""

import sys

from .cli import main

sys.exit(main())
