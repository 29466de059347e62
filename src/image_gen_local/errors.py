"""Exit codes and the errors that carry them.

Every error a user can meet is one of these, with a one-line reason and the fix, so the CLI never shows a
traceback and agents can branch on the exit code.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    UNREACHABLE = 3  # refused, DNS, HTML page, not an image API
    AUTH = 4  # key rejected, account needs verification
    QUOTA = 5  # rate limit / quota / capacity still failing at the deadline
    NO_IMAGE = 6  # answered without a picture (safety block, text only)
    BAD_INPUT = 7  # an --image file we cannot use
    DEADLINE = 8  # --timeout reached
    OUTPUT = 9  # output folder not writable, disk full, file exists


class ImageGenError(Exception):
    """An error with a reason, a fix and an exit code."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, reason: str, fix: str = "", exit_code: ExitCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        """`reason; fix`, without a full stop before the semicolon (servers end their words with one)."""
        return f"{self.reason.rstrip('. ')}; {self.fix}" if self.fix else self.reason

    def as_json(self) -> dict[str, Any]:
        """The one JSON shape of an error, in --json documents and the batch manifest alike."""
        return {"exit_code": int(self.exit_code), "class": self.exit_code.name.lower(), "message": str(self)}


class UsageError(ImageGenError):
    exit_code = ExitCode.USAGE


class InputImageError(ImageGenError):
    exit_code = ExitCode.BAD_INPUT


class OutputError(ImageGenError):
    exit_code = ExitCode.OUTPUT


class ServerError(ImageGenError):
    """The server could not give us a picture; the exit code says why."""
