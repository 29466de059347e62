"""Each benchmark keeps its own "## ... last results" section in bench/README.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


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
