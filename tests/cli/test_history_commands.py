"""`image-gen history`, `--image @last`, `again` and turning the history off, through the real command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, cli, markers, png_bytes
from image_gen_local import Settings, generate
from image_gen_local.history import History

DATA = "XDG_DATA_HOME"


def gen(emu, out: Path, *args: str):
    return cli(*args, "--base-url", emu.root_url, "--output-dir", str(out))


def history_file() -> Path:
    return Path(os.environ[DATA]) / "image-gen-local" / "history.sqlite3"


def rows() -> list:
    if not history_file().exists():
        return []
    with History(history_file()) as past:
        return past.search(limit=1000)


def edits(emu) -> list:
    return [r for r in emu.requests if r.route == "edits"]


def test_history_lists_every_picture_newest_first(emulator, out_dir):
    first = gen(emulator, out_dir, "a red fox").paths[0]
    second = gen(emulator, out_dir, "a blue whale", "--aspect-ratio", "16:9").paths[0]
    run = cli("history")
    assert run.code == 0 and run.stderr == ""
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "@1" and str(second) in lines[0]
    assert "1376x768" in lines[0] and "'a blue whale'" in lines[0] and "(synthetic)" in lines[0]
    assert lines[1].split()[:2] == ["@2", "id:1"] and str(first) in lines[1]
    document = cli("history", "--json").json
    assert [p["path"] for p in document["pictures"]] == [str(second), str(first)]
    assert document["pictures"][0]["recipe"]["requested"]["aspect_ratio"] == "16:9"


def test_history_finds_words_marks_missing_files_and_limits(emulator, out_dir):
    paths = [gen(emulator, out_dir, prompt).paths[0] for prompt in ("a red fox", "a fox at night", "a whale")]
    paths[0].unlink()
    run = cli("history", "fox")
    assert [line.split()[0] for line in run.stdout.splitlines()] == ["@2", "@3"]
    assert run.stdout.splitlines()[1].endswith(f"[missing]  {paths[0]}")
    limited = cli("history", "--limit", "1")
    assert len(limited.stdout.splitlines()) == 1 and "--limit" in limited.stderr
    none = cli("history", "zebra")
    assert none.code == 0 and none.stdout == "" and "no picture's prompt holds 'zebra'" in none.stderr


def test_an_empty_history_says_so_in_one_line(tmp_path):
    run = cli("history")
    assert run.code == 0 and run.stdout == "" and "no pictures yet" in run.stderr
    assert cli("history", "--json").json["pictures"] == []
    assert cli("history", "--limit", "0").code == 2


def test_image_at_last_uses_the_newest_picture_as_the_input(emulator, out_dir):
    [fox] = gen(emulator, out_dir, "a red fox").paths
    run = gen(emulator, out_dir, "the same fox, but at night", "--image", "@last", "--json")
    assert run.code == 0, run.stderr
    [edit] = edits(emulator)
    assert len(edit.files) == 1
    inputs = run.json["images"][0]
    recipe = rows()[0].recipe
    assert recipe["inputs"][0] == {
        "name": fox.name,
        "sha256": hashlib.sha256(fox.read_bytes()).hexdigest(),
        "path": str(fox),
    }
    assert inputs["id"] == rows()[0].id


def test_at_n_and_at_id_name_earlier_pictures(emulator, out_dir):
    for prompt in ("one", "two", "three"):
        gen(emulator, out_dir, prompt)
    run = gen(emulator, out_dir, "mix", "--image", "@2", "--image", "@id:1")
    assert run.code == 0, run.stderr
    names = [item["name"] for item in rows()[0].recipe["inputs"]]
    assert [n.split("-", 2)[2] for n in names] == ["two.png", "one.png"]


@pytest.mark.parametrize(
    ("ref", "code", "words"),
    [("@9", 2, "no such picture (the history holds 1 picture(s))"), ("@nope", 2, "not a history reference")],
)
def test_unknown_references_are_refused_before_any_request(emulator, out_dir, ref, code, words):
    gen(emulator, out_dir, "one")
    before = len(emulator.requests)
    run = gen(emulator, out_dir, "x", "--image", ref)
    assert run.code == code and words in run.stderr and len(run.stderr.splitlines()) == 1
    assert len(emulator.requests) == before


def test_a_reference_to_a_deleted_picture_names_its_old_path(emulator, out_dir):
    [gone] = gen(emulator, out_dir, "one").paths
    gone.unlink()
    run = gen(emulator, out_dir, "x", "--image", "@last")
    assert run.code == 7 and str(gone) in run.stderr and "moved or deleted" in run.stderr


def test_again_makes_the_picture_again_with_options_overriding(emulator, out_dir, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((400, 300)))
    first = gen(emulator, out_dir, "a watercolor fox", "--image", str(photo), "--size", "600x400")
    assert first.code == 0
    run = gen(emulator, out_dir, "again", "@last", "--json")
    assert run.code == 0, run.stderr
    image = run.json["images"][0]
    assert (image["width"], image["height"]) == (600, 400)
    last = edits(emulator)[-1]
    assert last.effective_prompt == "a watercolor fox" and len(last.files) == 1
    bigger = gen(emulator, out_dir, "again", "@2", "--size", "900x600", "the fox at night", "-n", "2")
    assert bigger.code == 0 and len(bigger.paths) == 2
    assert edits(emulator)[-1].effective_prompt == "the fox at night"
    assert [e.recipe["delivered"]["width"] for e in rows()[:2]] == [900, 900]


def test_again_with_a_new_resolution_keeps_the_ratio_of_an_exact_size(emulator, out_dir):
    gen(emulator, out_dir, "a banner", "--size", "600x400")
    run = gen(emulator, out_dir, "again", "@last", "--resolution", "2k", "--json")
    assert run.code == 0 and (run.json["images"][0]["width"], run.json["images"][0]["height"]) == (2528, 1696)


def test_again_from_a_picture_file_uses_its_recipe(emulator, out_dir, tmp_path):
    [path] = gen(emulator, out_dir, "a lighthouse", "--aspect-ratio", "3:2").paths
    copy = tmp_path / "sent-to-me.png"
    copy.write_bytes(path.read_bytes())  # a copy the history does not know
    run = gen(emulator, out_dir, "again", str(copy))
    assert run.code == 0, run.stderr
    assert rows()[0].recipe["requested"]["aspect_ratio"] == "3:2"


def test_again_needs_the_inputs_of_a_recipe_from_outside_the_history(emulator, out_dir, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((300, 300)))
    [path] = gen(emulator, out_dir, "restyled", "--image", str(photo)).paths
    copy = tmp_path / "copy.png"
    copy.write_bytes(path.read_bytes())
    run = gen(emulator, out_dir, "again", str(copy))
    assert run.code == 2 and "--image photo.png" in run.stderr
    assert gen(emulator, out_dir, "again", str(copy), "--image", str(photo)).code == 0


def test_again_says_which_input_is_gone(emulator, out_dir, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((300, 300)))
    gen(emulator, out_dir, "restyled", "--image", str(photo))
    photo.unlink()
    run = gen(emulator, out_dir, "again", "@last")
    assert run.code == 7 and f"input 1 of @last ({photo}) is missing" in run.stderr


def test_again_warns_when_an_input_changed_since(emulator, out_dir, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((300, 300)))
    gen(emulator, out_dir, "restyled", "--image", str(photo))
    photo.write_bytes(png_bytes((300, 300), "red"))
    run = gen(emulator, out_dir, "again", "@last")
    assert run.code == 0 and "has changed since @last was made" in run.stderr


def test_a_batch_job_reference_counts_from_the_batch_start(emulator, out_dir, tmp_path):
    [base] = gen(emulator, out_dir, "the base picture").paths
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"prompt": f"variant {i}", "image": ["@last"]} for i in range(3)]
    jobs.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    run = gen(emulator, out_dir, "batch", str(jobs), "--concurrency", "1")
    assert run.code == 0, run.stderr
    assert all(r.recipe["inputs"][0]["path"] == str(base) for r in rows()[:3])


@pytest.mark.parametrize(
    "how",
    [
        ("--no-history",),
        ("env", "IMAGE_GEN_NO_HISTORY", "1"),
        ("env", "IMAGE_GEN_HISTORY", "off"),
        ("config", "history = false"),
    ],
)
def test_the_history_can_be_turned_off(emulator, out_dir, tmp_path, monkeypatch, how):
    args: list[str] = []
    if how[0] == "env":
        monkeypatch.setenv(how[1], how[2])
    elif how[0] == "config":
        config = tmp_path / "config.toml"
        config.write_text(how[1] + "\n")
        monkeypatch.setenv("IMAGE_GEN_CONFIG", str(config))
    else:
        args = list(how)
    assert gen(emulator, out_dir, "not recorded", *args).code == 0
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("also not recorded\n")
    assert gen(emulator, out_dir, "batch", str(jobs), *args).code == 0
    assert rows() == []


def test_a_history_switch_that_is_neither_on_nor_off_is_a_usage_error(emulator, out_dir, monkeypatch):
    monkeypatch.setenv("IMAGE_GEN_HISTORY", "maybe")
    run = gen(emulator, out_dir, "x")
    assert run.code == 2 and "IMAGE_GEN_HISTORY" in run.stderr and "'maybe'" in run.stderr


def test_a_history_that_cannot_be_written_never_costs_a_picture(emulator, out_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("IMAGE_GEN_DATA_DIR", str(blocker))
    run = gen(emulator, out_dir, "still saved", "-n", "2")
    assert run.code == 0 and len(run.paths) == 2 and all(p.is_file() for p in run.paths)
    assert run.stderr.count("the history could not record it") == 1
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("one\ntwo\n")
    batch = gen(emulator, out_dir, "batch", str(jobs))  # said even though a batch hides warnings without -v
    assert batch.code == 0 and batch.stderr.count("the history could not record it") == 1


def test_the_python_api_records_unless_told_not_to(emulator, out_dir):
    settings = Settings(base_url=emulator.base_url, output_dir=out_dir)
    result = generate("from python", settings=settings)
    assert rows()[0].path == result.images[0].path and result.images[0].id == rows()[0].id
    generate("not recorded", settings=Settings(base_url=emulator.base_url, output_dir=out_dir, history=False))
    assert len(rows()) == 1


@pytest.mark.parametrize(("word", "command"), [("histroy", "history"), ("shw", "show"), ("agian", "again")])
def test_a_mistyped_history_command_gets_did_you_mean(emulator, out_dir, word, command):
    run = gen(emulator, out_dir, word)
    assert run.code == 2 and f"did you mean `image-gen {command}`?" in run.stderr


def test_eight_real_processes_making_pictures_at_once_record_every_one(emulator, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(IMAGE_GEN_BASE_URL=emulator.root_url, IMAGE_GEN_OUTPUT_DIR=str(tmp_path / "out"))
    procs = [
        subprocess.Popen(
            [sys.executable, "scripts/gen.py", f"picture {n}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    saved = {path for out, _ in outputs for path in markers(out)}
    assert len(saved) == 8 and {r.path for r in rows()} == saved
    assert not any("history" in err for _, err in outputs)
