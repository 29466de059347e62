"""The request model: what the user asked for, the one parser from options, and every check needing no server.

Every front door (the command line, a batch line, the Python API) turns its text into an `ImageRequest`
through `request_from_options`, so they accept and refuse exactly the same things with the same words.
`prepare` then runs every local check (inputs loaded, geometry planned, output place known) before the
first request, and the results of a run are `SavedImage` and `Result`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

# typing_extensions' TypedDict: the MCP SDK's pydantic builds the tools' output schema from these and refuses
# typing's on Python < 3.12. Loaded with the openai SDK anyway, never by the command line's start-up.
from typing_extensions import NotRequired, TypedDict

from . import files, geometry, history
from .config import Settings
from .errors import ExitCode, ImageGenError, UsageError
from .upstream import MAX_INPUTS

if TYPE_CHECKING:
    from .images import Upload

MAX_PROMPT_CHARS = 32_000
MAX_COUNT = 100


@dataclass(frozen=True)
class ImageRequest:
    """What the user asked for."""

    prompt: str
    images: tuple[Path, ...] = ()
    size: tuple[int, int] | None = None
    resolution: str = "1K"
    aspect_ratio: geometry.Ratio | None = None
    count: int = 1
    output: Path | None = None


def request_from_options(
    prompt: str,
    *,
    images: Sequence[str | Path] = (),
    size: str | None = None,
    resolution: str | None = None,
    aspect_ratio: str | None = None,
    count: Any = 1,
    output: str | Path | None = None,
    base: Path | None = None,
) -> ImageRequest:
    """The request from options as text (a flag, a JSON job field, a keyword argument).

    Relative paths start from `base` when given (a batch file's folder), else from the working folder.
    Raises ValueError saying what is wrong; each front door turns it into its own kind of refusal.
    """

    def path(value: str | Path) -> Path:
        if history.is_ref(str(value)):  # a picture of the history, found when the request is prepared
            return Path(str(value))
        candidate = Path(value).expanduser()
        return candidate if base is None or candidate.is_absolute() else base / candidate

    return ImageRequest(
        prompt=prompt,
        images=tuple(path(p) for p in images),
        size=geometry.parse_size(str(size)) if size else None,
        resolution=geometry.parse_tier(str(resolution or "1k")),
        aspect_ratio=geometry.parse_ratio(str(aspect_ratio)) if aspect_ratio else None,
        count=parse_count(count),
        output=path(output) if output else None,
    )


def usage_request(prompt: str, **options: Any) -> ImageRequest:
    """`request_from_options` for a front door whose caller typed the options: bad ones are a UsageError."""
    try:
        return request_from_options(prompt, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_count(value: Any) -> int:
    """A whole number of pictures, from an int or its text (the range is checked by `check_request`)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValueError(f"count {value!r} is not a whole number; use e.g. 3")
    return int(value)


class ImageRecord(TypedDict):
    """One picture in the run's document (`--json`, MCP structured content): declared once, here."""

    id: NotRequired[int]  # its row in the history, when recorded
    path: str
    width: int
    height: int
    mime: str
    model: str
    route: str
    seconds: float
    retries: int
    warnings: list[str]


# An error in the document: what `ImageGenError.as_json` gives ("class" is a keyword, hence this form).
ErrorRecord = TypedDict("ErrorRecord", {"exit_code": int, "class": str, "message": str})


class RunDocument(TypedDict):
    """The document of a run: `image-gen --json` prints it, the MCP tools return it (`Result.as_json`)."""

    ok: bool
    exit_code: int
    images: list[ImageRecord]
    errors: list[ErrorRecord]
    warnings: list[str]


@dataclass
class SavedImage:
    """One delivered picture and how it came to be."""

    path: Path
    width: int
    height: int
    mime: str
    model: str
    route: str
    seconds: float
    retries: int
    warnings: list[str] = field(default_factory=list)
    recipe: dict[str, Any] | None = None  # what the file carries (`image-gen show` prints it)
    id: int | None = None  # its row in the history (`@id:42`), when recorded

    def as_json(self) -> ImageRecord:
        record: ImageRecord = {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "mime": self.mime,
            "model": self.model,
            "route": self.route,
            "seconds": round(self.seconds, 3),
            "retries": self.retries,
            "warnings": self.warnings,
        }
        return {"id": self.id, **record} if self.id is not None else record


@dataclass
class Result:
    images: list[SavedImage] = field(default_factory=list)
    errors: list[ImageGenError] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return self.errors[0].exit_code if self.errors else ExitCode.OK

    def as_json(self) -> RunDocument:
        """The one document of a run: `--json` prints it, the MCP tools return it as structured content."""
        return {
            "ok": not self.errors,
            "exit_code": int(self.exit_code),
            "images": [saved.as_json() for saved in self.images],
            "errors": [cast(ErrorRecord, error.as_json()) for error in self.errors],
            "warnings": [w for saved in self.images for w in saved.warnings],
        }


@dataclass(frozen=True)
class Prepared:
    """A request after every local check: inputs loaded, geometry planned, output place known."""

    request: ImageRequest
    prompt: str
    inputs: tuple[Upload, ...]
    plan: geometry.Plan
    output_dir: Path
    output: Path | None
    # When the request was prepared: the -n pictures of one request share it in their names, so `ls` lists
    # -1, -2, -3 in order even when they are saved in different seconds (or out of order).
    made: datetime = field(default_factory=datetime.now, compare=False)


def input_paths(request: ImageRequest, settings: Settings, newest: int | None = None) -> list[Path]:
    """The input pictures' files, history references (`@last`, `@2`, `@id:42`) replaced by theirs."""
    if not any(history.is_ref(str(p)) for p in request.images):
        return [p.expanduser() for p in request.images]
    with history.History(settings.history_file) as past:
        return [
            history.resolve_input(past, str(p), newest) if history.is_ref(str(p)) else p.expanduser()
            for p in request.images
        ]


def check_prompt(prompt: str) -> str:
    text = prompt.strip()
    if not text:
        raise UsageError("the prompt is empty", "describe the picture, e.g. 'a cute cat, cartoon style'")
    if "\x00" in text:
        raise UsageError("the prompt contains a NUL character", "remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8, kept as surrogates (argv, stdin)
        raise UsageError("the prompt holds bytes that are not UTF-8 text", "write it as UTF-8") from None
    if len(text) > MAX_PROMPT_CHARS:
        raise UsageError(
            f"the prompt is {len(text)} characters, above the limit of {MAX_PROMPT_CHARS}", "shorten it"
        )
    return text


def check_request(request: ImageRequest) -> str:
    """The checks that need neither the server nor the files (a batch runs them on every line first).

    Returns the cleaned prompt; raises UsageError.
    """
    prompt = check_prompt(request.prompt)
    if not 1 <= request.count <= MAX_COUNT:
        raise UsageError(f"--count {request.count} is out of range", f"use 1 to {MAX_COUNT}")
    if request.output is not None and request.count > 1:
        raise UsageError("--output names one file but --count asks for several", "drop --output or --count")
    for image in request.images:
        if history.is_ref(str(image)):
            history.parse_ref(str(image))  # a malformed reference is a usage error, found before any work
    if len(request.images) > MAX_INPUTS:
        raise UsageError(
            f"{len(request.images)} --image files given; the model takes at most {MAX_INPUTS}",
            "drop some",
        )
    if request.size is not None:
        try:
            geometry.plan(size=request.size)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return prompt


def prepare(
    request: ImageRequest, settings: Settings, check_output: bool = True, newest: int | None = None
) -> Prepared:
    """Every check that needs no server. Raises ImageGenError; touches nothing but the output folder.

    `check_output=False` when the caller already checked the output folder (a batch checks it once).
    History references (`@last`) count back from the picture `newest` when given (a batch's start).
    """
    from . import images  # Pillow: only once there is a request to prepare

    prompt = check_request(request)
    inputs = tuple(images.load_input(p) for p in input_paths(request, settings, newest))
    ratio = request.aspect_ratio
    if ratio is None and inputs:
        ratio = geometry.snap_ratio(geometry.Ratio.of(*inputs[0].original_size))
    try:
        plan = geometry.plan(ratio, request.resolution, request.size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if request.output is not None:
        output = files.check_new_file(request.output)
        output_dir = output.parent
    elif check_output:
        output, output_dir = None, files.prepare_dir(settings.output_dir)
    else:
        output, output_dir = None, settings.output_dir.expanduser().resolve()
    return Prepared(request, prompt, inputs, plan, output_dir, output)
