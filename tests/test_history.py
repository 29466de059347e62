"""The history store: rows in, newest first, found by words, named by references, shared by processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from image_gen_local import history
from image_gen_local.errors import ExitCode, ImageGenError, InputImageError, UsageError
from image_gen_local.history import History, Recorder


def recipe(prompt: str, **extra) -> dict:
    return {
        "format": "image-gen-local recipe 1",
        "prompt": prompt,
        "model": "gemini-3-pro-image",
        "delivered": {"width": 1376, "height": 768, "format": "PNG"},
        "synthetic": False,
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path):
    with History(tmp_path / "data" / "history.sqlite3") as past:
        yield past


def filled(store: History, tmp_path: Path, *prompts: str) -> list[Path]:
    paths = []
    for index, prompt in enumerate(prompts):
        path = tmp_path / f"p{index}.png"
        path.write_bytes(b"picture")
        store.add(path, recipe(prompt))
        paths.append(path)
    return paths


def test_pictures_are_listed_newest_first_with_their_references(store, tmp_path):
    filled(store, tmp_path, "a red fox", "a blue whale", "a green frog")
    entries = store.search()
    assert [e.prompt for e in entries] == ["a green frog", "a blue whale", "a red fox"]
    assert [e.ref for e in entries] == ["@1", "@2", "@3"] and [e.id for e in entries] == [3, 2, 1]
    assert entries[0].as_json()["recipe"]["prompt"] == "a green frog" and entries[0].width == 1376


def test_the_history_file_is_the_users_alone(store, tmp_path):
    filled(store, tmp_path, "private")
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.path.parent.stat().st_mode & 0o077 == 0


def test_words_find_prompts_by_word_and_word_start_and_keep_their_global_reference(store, tmp_path):
    filled(store, tmp_path, "a red fox", "a blue whale", "two foxes at night", "Café au lait")
    assert [e.prompt for e in store.search("fox")] == ["two foxes at night", "a red fox"]
    assert [e.ref for e in store.search("fox")] == ["@2", "@4"]  # the references `again` takes
    assert [e.prompt for e in store.search("night FOX")] == ["two foxes at night"]
    assert [e.prompt for e in store.search("cafe")] == ["Café au lait"]  # accents ignored
    assert store.search("zebra") == []


def test_words_inside_other_words_are_found_as_substrings(store, tmp_path):
    filled(store, tmp_path, "猫咪在窗台上，卡通风格", "a snowman", "100%_done")
    assert [e.prompt for e in store.search("窗台")] == ["猫咪在窗台上，卡通风格"]
    assert [e.prompt for e in store.search("owma")] == ["a snowman"]
    assert store.search("0%_d")[0].prompt == "100%_done"


def test_without_full_text_search_words_are_matched_as_substrings(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "_FTS", "CREATE VIRTUAL TABLE prompts USING fts5_missing(prompt)")
    with History(tmp_path / "h.sqlite3") as store:
        filled(store, tmp_path, "a red fox", "a blue whale")
        assert not store._fts
        assert [e.prompt for e in store.search("whale")] == ["a blue whale"]


def test_a_search_of_an_absent_history_finds_nothing_and_creates_nothing(tmp_path):
    store = History(tmp_path / "none" / "history.sqlite3")
    assert store.search("fox") == [] and not store.path.exists()


@pytest.mark.parametrize(
    ("ref", "prompt"), [("@last", "c"), ("@1", "c"), ("@2", "b"), ("@3", "a"), ("@id:1", "a")]
)
def test_references_name_pictures(store, tmp_path, ref, prompt):
    filled(store, tmp_path, "a", "b", "c")
    assert store.entry(ref).prompt == prompt


def test_references_count_from_a_moment_when_asked(store, tmp_path):
    filled(store, tmp_path, "a", "b")
    newest = store.newest()
    filled(store, tmp_path, "c")
    assert store.entry("@last", newest).prompt == "b" and store.entry("@last").prompt == "c"


@pytest.mark.parametrize("ref", ["@0", "@foo", "@-1", "@id:", "@ last"])
def test_a_malformed_reference_is_a_usage_error_saying_what_works(ref):
    with pytest.raises(UsageError) as caught:
        history.parse_ref(ref)
    assert "@last" in str(caught.value) and "@id:42" in str(caught.value)


def test_an_unknown_reference_says_how_many_pictures_there_are(store, tmp_path):
    with pytest.raises(UsageError, match="the history is empty"):
        store.entry("@1")
    filled(store, tmp_path, "a", "b")
    for ref in ("@3", "@id:9"):
        with pytest.raises(UsageError, match="holds 2 picture"):
            store.entry(ref)


def test_a_moved_or_deleted_picture_is_listed_as_missing_not_an_error(store, tmp_path):
    [gone, kept] = filled(store, tmp_path, "gone", "kept")
    gone.unlink()
    entries = store.search()
    assert [(e.prompt, e.exists) for e in entries] == [("kept", True), ("gone", False)]
    assert store.entry("@2").path == gone
    with pytest.raises(InputImageError) as caught:
        history.resolve_input(store, "@2")
    assert caught.value.exit_code is ExitCode.BAD_INPUT and str(gone) in str(caught.value)
    assert history.resolve_input(store, "@1") == kept


def test_a_history_that_cannot_be_written_is_said_once_and_costs_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    said: list[str] = []
    record = Recorder(blocker / "history.sqlite3", said.append)
    assert record(tmp_path / "a.png", recipe("a")) is None
    assert record(tmp_path / "b.png", recipe("b")) is None
    assert len(said) == 1 and "--no-history" in said[0] and "the picture is saved" in said[0]
    blocker.unlink()  # the run goes on without the history: no second wait, even once it could work
    assert record(tmp_path / "c.png", recipe("c")) is None and not blocker.exists()


def test_a_damaged_history_file_is_an_error_with_a_fix_when_read(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ImageGenError) as caught:
        History(path).search()
    assert caught.value.exit_code is ExitCode.OUTPUT and "move the file away" in str(caught.value)
    assert history.newest_in(path) is None


def test_a_history_another_process_keeps_locked_is_an_error_after_one_busy_wait(tmp_path):
    path = tmp_path / "history.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # held until the end: every try to set the file up meets it
    try:
        with pytest.raises(ImageGenError) as caught, History(path, busy=0.3) as store:
            store.count()  # one wait of 0.3 s in all, not one per try (it was 50 tries of 10 s: minutes)
        assert caught.value.exit_code is ExitCode.OUTPUT and "locked" in str(caught.value)
        said: list[str] = []
        record = Recorder(path, said.append)
        record.history.busy = 0.3
        assert record(tmp_path / "a.png", recipe("a")) is None and "the picture is saved" in said[0]
    finally:
        holder.close()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from image_gen_local.history import Recorder
    said = []
    record = Recorder(Path(sys.argv[1]), said.append)
    sys.stdin.readline()  # every process starts writing at the same moment
    ids = [record(Path(f"/pictures/{sys.argv[2]}-{i}.png"), {"prompt": f"writer w{sys.argv[2]} picture p{i}",
           "model": "m", "delivered": {"width": 1, "height": 1}}) for i in range(int(sys.argv[3]))]
    print(ids, said)
    """
)


def test_eight_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "fresh" / "history.sqlite3"  # a brand-new file: they also race to create it
    each = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(n), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    ids = [i for out, _ in outputs for i in json.loads(out.split("]")[0] + "]")]
    assert len(ids) == 8 * each and len(set(ids)) == 8 * each and None not in ids
    assert all(out.strip().endswith("[]") for out, _ in outputs)  # no write was refused
    with History(path) as store:
        assert store.count() == 8 * each
        assert len(store.search("writer", limit=1000)) == 8 * each
        assert len(store.search("p7", limit=1000)) == 8
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_positions_stay_right_when_a_row_was_removed_by_hand(store, tmp_path):
    filled(store, tmp_path, "a", "b", "c", "d")
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM pictures WHERE id = 2")
    assert [(e.prompt, e.ref) for e in store.search()] == [("d", "@1"), ("c", "@2"), ("a", "@3")]
    assert store.entry("@3").prompt == "a" and store.entry("@id:3").ref == "@2"


def test_pages_follow_each_other_without_gaps_or_repeats(store, tmp_path):
    filled(store, tmp_path, *(f"a fox number {n}" if n % 2 else f"a whale number {n}" for n in range(9)))
    for words, expected in (("", 9), ("fox", 4), ("umbe", 9)):  # all, full-text, substring
        seen, before = [], None
        for _ in range(10):  # bounded
            page = store.search(words, 2, before)
            seen += [entry.id for entry in page]
            if len(page) < 2:
                break
            before = page[-1].id
        assert len(seen) == len(set(seen)) == expected and seen == sorted(seen, reverse=True), words
