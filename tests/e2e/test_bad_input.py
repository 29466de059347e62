"""Bad input: refused before any request, one line, a documented exit code; nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from helpers import cli, png_bytes, write_picture


def make_inputs(tmp: Path) -> dict[str, Path]:
    """The input files the table refers to, by name."""
    files = {
        "empty": tmp / "empty.png",
        "truncated": tmp / "truncated.png",
        "noise": tmp / "noise.jpg",
        "text-as-png": tmp / "notes.png",
        "svg": tmp / "logo.svg",
        "svg-as-png": tmp / "logo.png",
        "folder": tmp / "folder.png",
        "fifo": tmp / "pipe.png",
        "good": tmp / "good.png",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(png_bytes((400, 400))[:200])
    files["noise"].write_bytes(os.urandom(5000))
    files["text-as-png"].write_text("this is a shopping list, not a picture\n")
    files["svg"].write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    files["svg-as-png"].write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>')
    files["folder"].mkdir()
    os.mkfifo(files["fifo"])
    write_picture(files["good"], (64, 64))
    return files


# (name, argv with {placeholders}, exit code, words in the one-line error)
CASES: list[tuple[str, list[str], int, str]] = [
    ("missing image", ["x", "--image", "{tmp}/nope.png"], 7, "no such file"),
    ("empty image", ["x", "--image", "{empty}"], 7, "is empty"),
    ("truncated image", ["x", "--image", "{truncated}"], 7, "damaged or truncated"),
    ("random bytes", ["x", "--image", "{noise}"], 7, "not a picture"),
    ("text renamed .png", ["x", "--image", "{text-as-png}"], 7, "not a picture"),
    ("svg", ["x", "--image", "{svg}"], 7, "SVG"),
    ("svg renamed .png", ["x", "--image", "{svg-as-png}"], 7, "SVG"),
    ("directory as image", ["x", "--image", "{folder}"], 7, "is a folder"),
    ("pipe as image (unreadable)", ["x", "--image", "{fifo}"], 7, "not a regular file"),
    ("15 inputs", ["x"] + ["--image", "{good}"] * 15, 2, "at most 14"),
    ("size with *", ["x", "--size", "1024*1024"], 2, "WxH"),
    ("size 0x0", ["x", "--size", "0x0"], 2, "at least 1x1"),
    ("negative size", ["x", "--size=-5x10"], 2, "WxH"),
    ("size abc", ["x", "--size", "abc"], 2, "WxH"),
    ("size beyond 4K", ["x", "--size", "99999x99999"], 2, "largest"),
    ("ratio 0:1", ["x", "--aspect-ratio", "0:1"], 2, "positive"),
    ("ratio 16/9", ["x", "--aspect-ratio", "16/9"], 2, "W:H"),
    ("ratio wide", ["x", "--aspect-ratio", "wide"], 2, "W:H"),
    ("resolution 8k", ["x", "--resolution", "8k"], 2, "1k, 2k, 4k"),
    ("empty prompt", [""], 2, "prompt is empty"),
    ("whitespace prompt", [" \n\t "], 2, "prompt is empty"),
    ("100 000-character prompt", ["a" * 100_000], 2, "above the limit"),
    ("NUL in prompt", ["a cat\x00"], 2, "NUL"),
    ("output dir is a file", ["x", "--output-dir", "{good}"], 9, "is a file"),
    ("output dir under a file", ["x", "--output-dir", "{good}/sub"], 9, "under a file"),
    ("output exists", ["x", "-o", "{good}"], 2, "already exists"),
    ("output with -n 3", ["x", "-o", "{tmp}/one.png", "-n", "3"], 2, "--output names one file"),
    ("count 0", ["x", "-n", "0"], 2, "out of range"),
    ("count abc", ["x", "-n", "abc"], 2, "whole number"),
    ("base url without scheme", ["x", "--base-url", "127.0.0.1:8045"], 2, "no scheme"),
    ("base url ftp", ["x", "--base-url", "ftp://127.0.0.1/v1"], 2, "not http"),
    ("timeout 0", ["x", "--timeout", "0"], 2, "more than 0"),
    ("route fax", ["x", "--route", "fax"], 2, "route"),
]


def test_the_table_is_big_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize(("name", "argv", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(emulator, tmp_path, name, argv, code, words):
    inputs = make_inputs(tmp_path)
    places = {"tmp": str(tmp_path), **{k: str(v) for k, v in inputs.items()}}
    args = [a.format(**places) if "{" in a else a for a in argv]
    if "--base-url" not in args:
        args += ["--base-url", emulator.root_url]
    out = tmp_path / "out"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if not p.is_fifo()}
    run = cli(*args, "--output-dir", str(out)) if "--output-dir" not in args else cli(*args)
    assert run.code == code, run.stderr
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert [r for r in emulator.requests if r.route != "models"] == []  # nothing was sent
    assert not out.exists()  # nothing was written
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if not p.is_fifo() and p != out}
    assert after == before  # no existing file touched


def test_100_megapixel_input_is_downscaled_not_refused(emulator, tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (10_000, 10_000), "green").save(big, "JPEG", quality=40)
    run = cli(
        "the same field at night",
        "--image",
        str(big),
        "--base-url",
        emulator.root_url,
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert run.code == 0, run.stderr
    [request] = [r for r in emulator.requests if r.route == "edits"]
    [(_, _, length, _)] = request.files
    assert length < 10_000_000
    assert request.aspect_ratio == "1:1"


@pytest.mark.parametrize(
    "prompt",
    [
        "line one\nline two",
        "she said \"hello\" and 'goodbye'",
        "$(rm -rf ~) `whoami` ; echo pwned",
        "a cat 🐱 under a rainbow 🌈",
        "قطة على حافة النافذة",  # right-to-left
        "猫咪在窗台上，卡通风格",
        "../../../../etc/passwd",
        "/tmp/evil.png",
        "C:\\Windows\\System32\\drivers",
        "CON",
        "nul.txt",
        "..",
    ],
)
def test_unusual_prompts_are_sent_verbatim_with_safe_names(emulator, tmp_path, prompt):
    out = tmp_path / "out"
    run = cli(prompt, "--base-url", emulator.root_url, "--output-dir", str(out))
    assert run.code == 0, run.stderr
    [path] = run.paths
    assert path.parent == out.resolve() and path.exists()
    assert [r.effective_prompt for r in emulator.requests if r.route == "generations"] == [prompt.strip()]
    assert not set(path.name) & set('/\\:*?"<>|$`;') and " " not in path.name
