"""The history: every picture made here, one row each, in a local SQLite file.

It is what lets a user say "again, but at night" (`--image @last`, `image-gen again @2`) and find last
week's cat (`image-gen history cat`). Each row holds the picture's path and its recipe (the same one the file
carries, plus where the input pictures were), never the key. Many processes may write at once: the file is
in WAL mode, and each picture is one short transaction that waits its turn. A picture moved or deleted
since is listed as missing, not an error. Searching uses SQLite's full-text index (FTS5) when the library
has it, and plain substring matching otherwise or when words find nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ImageGenError, InputImageError, OutputError, UsageError

BUSY_SECONDS = 10.0  # how long any use waits for another process's write (or lock) to finish, in all
SETUP_PAUSE = 0.05  # switching a brand-new file to WAL can meet another process doing the same: retry
DEFAULT_LIMIT = 20
REF_HELP = "use @last (the newest picture), @2 (the one before), ... or @id:42 (see `image-gen history`)"
_REF = re.compile(r"@(?:(last)|(\d+)|id:(\d+))", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pictures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: @id:42 always means one picture
    created REAL NOT NULL,
    path TEXT NOT NULL,
    prompt TEXT NOT NULL,
    model TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    synthetic INTEGER NOT NULL,
    recipe TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pictures_by_path ON pictures (path);
"""
_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS prompts USING fts5(prompt, content='pictures', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')"
)
_FIELDS = "created, path, prompt, model, width, height, synthetic, recipe"
_COLUMNS = f"id, {_FIELDS}"


@dataclass(frozen=True)
class Entry:
    """One picture of the history."""

    id: int
    created: float
    path: Path
    prompt: str
    model: str
    width: int
    height: int
    synthetic: bool
    recipe: dict[str, Any]
    position: int  # 1 for the newest picture: `@1`

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def ref(self) -> str:
        return f"@{self.position}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "path": str(self.path),
            "exists": self.exists,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.created)),
            "prompt": self.prompt,
            "model": self.model,
            "width": self.width,
            "height": self.height,
            "synthetic": self.synthetic,
            "recipe": self.recipe,
        }


def is_ref(text: str) -> bool:
    """`@...` names a picture of the history (write ./@name for a file whose name starts with @)."""
    return text.startswith("@")


def parse_ref(text: str) -> tuple[str, int]:
    """("position", n) for @last / @n, ("id", n) for @id:n; UsageError for anything else."""
    match = _REF.fullmatch(text.strip())
    if match is None or (match.group(2) is not None and int(match.group(2)) == 0):
        raise UsageError(f"{text!r} is not a history reference", REF_HELP)
    if match.group(3) is not None:
        return "id", int(match.group(3))
    return "position", int(match.group(2) or 1)


class History:
    """The history file. Opened on first use; safe to share between threads."""

    def __init__(self, path: Path, busy: float = BUSY_SECONDS) -> None:
        self.path = path
        self.busy = busy
        self._db: sqlite3.Connection | None = None
        self._fts = False
        self._lock = threading.Lock()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise self._broken(exc) from None

    def _broken(self, exc: BaseException) -> OutputError:
        return OutputError(
            f"the history {self.path} cannot be used ({exc})",
            "check that folder; move the file away to start a new history, or use --no-history",
        )

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):  # prompts are private: the file is the user's alone
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            db = sqlite3.connect(self.path, timeout=self.busy, isolation_level=None, check_same_thread=False)
            try:
                self._fts = _set_up(db, time.monotonic() + self.busy)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def add(self, picture: Path, recipe: dict[str, Any]) -> int:
        """Record one saved picture; its id. Raises OutputError."""
        row = (
            time.time(),
            str(picture),
            str(recipe.get("prompt", "")),
            str(recipe.get("model", "")),
            int(recipe.get("delivered", {}).get("width", 0)),
            int(recipe.get("delivered", {}).get("height", 0)),
            int(bool(recipe.get("synthetic"))),
            json.dumps(recipe, ensure_ascii=False),
        )
        with self._lock:
            db = self._open()
            try:
                db.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting for others; never mid-way
                try:
                    cursor = db.execute(f"INSERT INTO pictures ({_FIELDS}) VALUES (?,?,?,?,?,?,?,?)", row)
                    picture_id = int(cursor.lastrowid or 0)
                    if self._fts:
                        db.execute("INSERT INTO prompts (rowid, prompt) VALUES (?, ?)", (picture_id, row[2]))
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._broken(exc) from None
        return picture_id

    def newest(self) -> int:
        """The newest picture's id (0 when empty): a batch resolves its references against this moment."""
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM pictures")[0][0])

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM pictures")[0][0])

    def search(self, words: str = "", limit: int = DEFAULT_LIMIT, before: int | None = None) -> list[Entry]:
        """The newest pictures first (older than the id `before`, for the next page), those whose prompt
        holds every word when words are given."""
        if not self.path.exists():
            return []
        older = "id < ?" if before is not None else "1"
        paging: tuple[Any, ...] = (before,) if before is not None else ()
        terms = _WORD.findall(words)
        if not terms:
            sql = f"SELECT {_COLUMNS} FROM pictures WHERE {older} ORDER BY id DESC LIMIT ?"
            return self._entries(sql, (*paging, limit))
        match = " ".join(f'"{term}"*' for term in terms)  # each word, or a word starting with it
        found = "SELECT 1 FROM prompts WHERE prompts MATCH ? LIMIT 1"
        if self._full_text() and self._query(found, (match,)):  # decided once for every page
            sql = (
                f"SELECT {_COLUMNS} FROM pictures WHERE {older} AND id IN "
                "(SELECT rowid FROM prompts WHERE prompts MATCH ?) ORDER BY id DESC LIMIT ?"
            )
            return self._entries(sql, (*paging, match, limit))
        # no FTS5, or words inside other words (Chinese has no spaces): substrings
        like = " AND ".join("prompt LIKE ? ESCAPE '\\'" for _ in terms)
        sql = f"SELECT {_COLUMNS} FROM pictures WHERE {older} AND {like} ORDER BY id DESC LIMIT ?"
        return self._entries(sql, (*paging, *(f"%{_escape_like(t)}%" for t in terms), limit))

    def entry(self, ref: str, newest: int | None = None) -> Entry:
        """The picture a reference names (counting from `newest` when given); UsageError if none."""
        kind, number = parse_ref(ref)
        total = self.count() if self.path.exists() else 0
        if total == 0:
            raise UsageError(f"{ref}: the history is empty", "make a picture first; see `image-gen history`")
        if kind == "id":
            found = self.by_id(number)
            rows = [found] if found else []
        else:
            top = newest if newest is not None else 1 << 62
            sql = f"SELECT {_COLUMNS} FROM pictures WHERE id <= ? ORDER BY id DESC LIMIT 1 OFFSET ?"
            rows = self._entries(sql, (top, number - 1))
        if not rows:
            held = f"the history holds {total} picture(s)"
            raise UsageError(f"{ref}: no such picture ({held})", REF_HELP)
        return rows[0]

    def by_id(self, picture_id: int) -> Entry | None:
        rows = self._entries(f"SELECT {_COLUMNS} FROM pictures WHERE id = ?", (picture_id,))
        return rows[0] if rows else None

    def by_path(self, path: Path) -> Entry | None:
        rows = self._entries(f"SELECT {_COLUMNS} FROM pictures WHERE path = ? ORDER BY id DESC", (str(path),))
        return rows[0] if rows else None

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            db = self._open()
            try:
                return list(db.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise self._broken(exc) from None

    def _full_text(self) -> bool:
        with self._lock:
            self._open()
            return self._fts

    def _entries(self, sql: str, args: tuple[Any, ...]) -> list[Entry]:
        """Rows as entries, each with its position counted from the newest (`@1`)."""
        rows = self._query(sql, args)
        if not rows:
            return []
        low, high, count = self._query("SELECT MIN(id), MAX(id), COUNT(*) FROM pictures")[0]
        if high - low + 1 == count:  # no row was ever removed: the position follows from the id at once
            return [_entry(row, high - row[0] + 1) for row in rows]
        newer = "SELECT COUNT(*) FROM pictures WHERE id > ?"
        return [_entry(row, int(self._query(newer, (row[0],))[0][0]) + 1) for row in rows]


def _entry(row: tuple[Any, ...], position: int) -> Entry:
    try:
        recipe = json.loads(row[8])
    except ValueError:
        recipe = {}
    return Entry(row[0], row[1], Path(row[2]), row[3], row[4], row[5], row[6], bool(row[7]), recipe, position)


def _set_up(db: sqlite3.Connection, deadline: float) -> bool:
    """WAL mode and the tables; True when full-text search is available. A brand-new file may be set up by
    several processes at once: retried until `deadline` (each try may itself wait the busy timeout, so the
    deadline, not a count of tries, bounds the wait for a file another process keeps locked)."""
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps every commit; a power cut may lose the last
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, _SCHEMA.split(";")):  # executescript would commit
                    db.execute(statement)
                fts = _create_fts(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return fts
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
            time.sleep(SETUP_PAUSE)


def _create_fts(db: sqlite3.Connection) -> bool:
    try:
        db.execute(_FTS)
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc).lower():
            return False  # this SQLite has no full-text search: substrings it is
        raise
    return True


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Recorder:
    """What every front door uses to record its pictures: a failure never fails or loses a saved picture,
    it is said once on stderr and the run goes on without the history (a locked file costs each try the
    whole busy wait: a batch would pay it for every picture)."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self.history = History(path)
        self.warn = warn
        self._said = False

    def __call__(self, picture: Path, recipe: dict[str, Any]) -> int | None:
        if self._said:
            return None
        try:
            return self.history.add(picture, recipe)
        except (ImageGenError, sqlite3.Error, OSError, ValueError) as exc:
            if not self._said:
                self._said = True
                reason = exc.reason if isinstance(exc, ImageGenError) else f"{self.history.path}: {exc}"
                self.warn(
                    f"the picture is saved, but the history could not record it ({reason}), nor the "
                    "rest of this run; check that folder, or turn the history off with --no-history"
                )
            return None

    def close(self) -> None:
        self.history.close()


def newest_in(path: Path) -> int | None:
    """The newest picture's id in the history at `path`; None when there is no readable history."""
    if not path.is_file():
        return None
    try:
        with History(path) as history:
            return history.newest()
    except ImageGenError:
        return None


def resolve_input(history: History, ref: str, newest: int | None = None) -> Path:
    """The file a reference given as an input picture names; InputImageError when it is gone."""
    entry = history.entry(ref, newest)
    if not entry.exists:
        raise InputImageError(
            f"--image {ref} is {entry.path}, which is missing (moved or deleted since it was made)",
            "give the picture's new path instead",
        )
    return entry.path
