"""What the MCP tools do, apart from the protocol: arguments to a request, a cancellable run, listings.

`mcp_server` turns MCP messages into calls on a `Service` and its results into MCP content; everything here
is plain Python (no SDK), so the same rules hold as on the command line: one parser for the options
(`request.usage_request`), every local check before the first request, one document per run
(`Result.as_json`), one throttle for every call at once. MCP clients start servers in odd working folders
(often `/`), so relative paths are resolved against places a user means, and missing folders are created.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from . import __version__
from .config import Settings, cache_dir
from .errors import ExitCode, ImageGenError, InputImageError, UsageError
from .files import TEMP_PREFIX
from .limiter import DEFAULT_CEILING
from .request import MAX_COUNT, Prepared, Result, prepare, usage_request
from .throttle import Throttle

if TYPE_CHECKING:
    from .engine import Generator

PREVIEWS = ("none", "small", "full")
PREVIEW_SIDE = 512
PROGRESS_SECONDS = 5.0  # clients reset their request timeout on each progress notification
STOP_GRACE = 10.0  # how long a cancelled call may take to let go of its request before we stop waiting
LIST_LIMIT = 20
_SHOWN = {".png", ".jpg", ".jpeg", ".webp", ".gif"}

# SKILL.md's rules in brief, for the tool descriptions and the server's instructions. The full text is
# the `image_prompt_rules` prompt, read from SKILL.md itself (`prompt_rules`).
RULES_BRIEF = (
    "Never pass the user's words through as the prompt: work out what they want and write a clear English "
    "prompt yourself (translate; keep text that must appear in the picture in quotes, in its language). "
    "Name the style explicitly (e.g. 'anime style, Japanese anime, cel shading', 'oil painting style, "
    "visible brush strokes', 'photorealistic, natural lighting', 'watercolor painting'). Pick options from "
    "the wish: wallpaper 16:9, phone wallpaper 9:16, avatar or icon 1:1, 4K/print resolution 4k, "
    "'3 versions' count 3, an exact pixel size as size WxH."
)
EDIT_BRIEF = (
    "With input pictures, first look at them and describe the main content (people, objects, pose, scene, "
    "background, colours) in the prompt, then the change or style wanted; without that description the "
    "model invents a different picture."
)


def skill_file() -> Path | None:
    """SKILL.md: inside the package when installed from a wheel, at the project's root otherwise."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "SKILL.md", here.parent.parent / "SKILL.md"):
        if candidate.is_file():
            return candidate
    return None


def prompt_rules() -> str:
    """SKILL.md's section on writing the prompt, as it stands in SKILL.md (one text for skill and MCP)."""
    path = skill_file()
    text = path.read_text(encoding="utf-8") if path else ""
    start = text.find("## Core rule")
    if start < 0:
        return f"{RULES_BRIEF}\n\n{EDIT_BRIEF}"
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)].strip()


def error_line(error: ImageGenError) -> str:
    """The one line an MCP client shows: reason, fix and exit class (the CLI's exit code, by name)."""
    return f"{error} [exit {int(error.exit_code)}: {error.exit_code.name.lower()}]"


def as_error(exc: BaseException) -> ImageGenError:
    if isinstance(exc, ImageGenError):
        return exc
    return ImageGenError(f"unexpected {type(exc).__name__}: {exc}", "please report it")


def file_path(value: str) -> Path:
    """A path as a client may send it: plain, with `~`, or a `file://` URI (from a resource link)."""
    if value.startswith("file://"):
        return Path(unquote(urlsplit(value).path))
    return Path(value).expanduser()


@dataclass
class Service:
    """The server's state for every call: the settings it started with and the one throttle."""

    settings: Settings
    env: Mapping[str, str]
    concurrency: int = DEFAULT_CEILING  # a ceiling: the throttle learns the server's capacity below it
    log: Callable[[str], None] = lambda _line: None
    cwd: Path = field(default_factory=Path.cwd)
    throttle: Throttle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.concurrency)

    def output_dir(self, value: str | None) -> Path:
        """A relative output folder lies in the configured one (a client's working folder is arbitrary)."""
        if not value:
            return self.settings.output_dir
        path = file_path(value)
        if path.is_absolute():
            return path
        if ".." in path.parts:
            raise UsageError(
                f"output folder {value!r} climbs out of the configured one ({self.settings.output_dir})",
                "give a folder inside it, or an absolute path",
            )
        return self.settings.output_dir / path

    def input_path(self, value: str, output_dir: Path) -> Path:
        """An input picture: absolute as given; relative to the working folder, else to the output folder
        (where the pictures this server made are, so a file name from a result works)."""
        if value.startswith("@"):
            raise UsageError(
                f"{value!r} refers to the picture history, which this version does not have yet",
                "pass the picture's path (an earlier result's `path`, or a file name in the output folder)",
            )
        path = file_path(value)
        if path.is_absolute():
            return path
        places = dict.fromkeys([self.cwd, output_dir, self.settings.output_dir])
        for place in places:
            if (place / path).exists():
                return place / path
        raise InputImageError(
            f"input picture {value!r} not found in {' or '.join(str(p) for p in places)}",
            "pass an absolute path",
        )

    def prepare(
        self,
        prompt: str,
        *,
        images: Sequence[str] = (),
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        size: str | None = None,
        count: Any = 1,
        model: str | None = None,
        output_dir: str | None = None,
    ) -> tuple[Prepared, Settings]:
        """Every check of a call before any request, through the command line's own parser; raises
        ImageGenError. Creates the output folder when it is missing."""
        folder = self.output_dir(output_dir)
        request = usage_request(
            prompt,
            images=[self.input_path(str(p), folder) for p in images],
            size=size,
            resolution=resolution,
            aspect_ratio=aspect_ratio,
            count=count,
        )
        if model is not None and not model.strip():
            raise UsageError("the model name is empty", f"leave it out to use {self.settings.model}")
        settings = dataclasses.replace(
            self.settings, output_dir=folder, model=(model or self.settings.model).strip()
        )
        return prepare(request, settings), settings

    def call(self, prepared: Prepared, settings: Settings) -> Call:
        from .engine import Generator
        from .servers import ServerCache

        call = Call(prepared, self.log)
        call.generator = Generator(
            settings,
            warn=call.warned,
            cache=ServerCache(cache_dir(self.env)),
            throttle=self.throttle.branch(),
        )
        return call

    def pictures(self, output_dir: str | None, limit: int) -> dict[str, Any]:
        """The newest pictures in the output folder (this version keeps no history of its own)."""
        from .images import pixel_size

        if not 1 <= limit <= 200:
            raise UsageError(f"limit {limit} is out of range", "use 1 to 200")
        folder = self.output_dir(output_dir).expanduser()
        found: list[tuple[float, Path]] = []
        with contextlib.suppress(OSError):
            for path in folder.iterdir():
                if path.suffix.lower() in _SHOWN and not path.name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(OSError):
                        found.append((path.stat().st_mtime, path))
        found.sort(reverse=True)
        listed = []
        for mtime, path in found[:limit]:
            shape = pixel_size(path)
            if shape is None:
                continue
            width, height, mime = shape
            modified = datetime.fromtimestamp(mtime, tz=timezone.utc).isoformat(timespec="seconds")
            listed.append(
                {"path": str(path.resolve()), "width": width, "height": height, "mime": mime,
                 "bytes": path.stat().st_size, "modified": modified}
            )  # fmt: skip
        return {"folder": str(folder), "total": len(found), "images": listed}

    def status(self) -> dict[str, Any]:
        """doctor's checks, one line each, and what this server is set to use."""
        from .doctor import run_checks

        lines: list[str] = []
        code = run_checks(self.settings, lines.append)
        return {
            "ok": code == ExitCode.OK,
            "exit_code": code,
            "checks": lines,
            "version": __version__,
            "base_url": self.settings.base_url,
            "model": self.settings.model,
            "output_dir": str(self.settings.output_dir),
            "max_count": MAX_COUNT,
        }


class Call:
    """One tool call's pictures, made on a worker thread and stoppable from the event loop."""

    def __init__(self, prepared: Prepared, log: Callable[[str], None]) -> None:
        self.prepared = prepared
        self.log = log  # the server's stderr: an MCP client keeps it as the server's log
        self.generator: Generator | None = None
        self.status = "waiting for a free request slot"
        self.saved: list[Path] = []
        self.finished = threading.Event()
        self.started = time.monotonic()

    def warned(self, message: str) -> None:
        self.status = message  # a retry or a fallback: the next progress notification says so
        self.log(message)

    def stepped(self, message: str) -> None:
        self.status = message

    def run(self) -> Result:
        from .batch import run_request

        assert self.generator is not None
        try:
            return run_request(
                self.generator,
                self.prepared,
                on_saved=lambda saved: self.saved.append(saved.path),
                heartbeat=0,
                status=self.stepped,
            )
        finally:
            self.generator.close()
            self.finished.set()

    def stop(self) -> None:
        """The client cancelled: end the request in flight and let no file be started."""
        if self.generator is not None:
            self.generator.abort()

    def discard(self) -> None:
        """Remove what this call saved: a cancelled call leaves nothing behind."""
        for path in self.saved:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def progress(self) -> tuple[float, str]:
        return time.monotonic() - self.started, self.status
