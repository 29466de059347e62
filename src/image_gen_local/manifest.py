"""The batch manifest: one JSON line per saved picture and per finished job, appended as they happen.

Appending line by line means a batch killed at any moment leaves every finished picture recorded; a line cut
short by the kill is skipped on reading. A rerun streams the file and counts, per job key, the pictures that
still exist on disk, so only what is missing is asked for again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: Any = None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record, streamed; a damaged line (a kill mid-write) is skipped."""
        try:
            handle = self.path.open(encoding="utf-8", errors="replace")  # a kill can cut a character too
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(
                f"cannot read the manifest {self.path} ({exc.strerror or exc})", "choose another --manifest"
            ) from None
        with handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record

    def done(self) -> dict[str, list[str]]:
        """Per job key, the saved pictures that are still on disk."""
        saved: dict[str, list[str]] = {}
        for record in self.records():
            path = record.get("path")
            if record.get("type") == "picture" and isinstance(path, str) and Path(path).is_file():
                saved.setdefault(str(record.get("job")), []).append(path)
        return saved

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                if self._handle is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._handle = self.path.open("a", encoding="utf-8")
                    if _ends_mid_line(self.path):  # a kill cut the last line: do not glue ours onto it
                        self._handle.write("\n")
                self._handle.write(line)
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError as exc:
                raise OutputError(
                    f"cannot write the manifest {self.path} ({exc.strerror or exc})", "check the folder"
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"
