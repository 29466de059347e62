"""The command as agents run it: a new process, real stdout/stderr, exit codes, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import ROOT, cli, markers, picture, run_script, start_script, wait_until
from image_gen_local.cli.console import marker


def test_marker_format():
    assert marker(Path("/a b/c.png")) == "[IMAGE_PATH]/a b/c.png[/IMAGE_PATH]"


def test_seed_invocation_from_the_skill_folder(emulator, out_dir):
    """`python3 scripts/gen.py 'a cute cat, cartoon style'`, configured by environment only."""
    env = {"IMAGE_GEN_BASE_URL": emulator.root_url, "IMAGE_GEN_OUTPUT_DIR": str(out_dir)}
    proc = run_script("a cute cat, cartoon style", env=env)
    assert proc.returncode == 0, proc.stderr
    [path] = markers(proc.stdout)
    assert path.is_absolute() and path.exists() and picture(path).size == (1024, 1024)


def test_generate_subcommand_and_module_entry_point(emulator, out_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "image_gen_local",
            "generate",
            "a dog",
            "--base-url",
            emulator.base_url,
            "--output-dir",
            str(out_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(markers(proc.stdout)) == 1


def test_demo_runs_both_generations_and_says_synthetic(out_dir):
    proc = run_script("demo", "--output-dir", str(out_dir))
    assert proc.returncode == 0, proc.stderr
    paths = markers(proc.stdout)
    assert len(paths) == 3 and all(p.exists() for p in paths)  # the third through `image-gen mcp`
    assert "SYNTHETIC" in proc.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["x", "--resolution", "8k"], "resolution"),
        (["x", "--aspect-ratio", "16/9"], "aspect ratio"),
        (["x", "--size", "1024*1024"], "size"),
        (["x", "--timeout", "0"], "timeout"),
        (["x", "--base-url", "ftp://host"], "http"),
        (["x", "--count", "0"], "count"),
        (["x", "--route", "fax"], "route"),
        (["   "], "prompt is empty"),
        (["x", "--no-such-flag"], "unrecognized"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, words):
    run = cli(*args)
    assert run.code == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]


def test_json_document(emulator, out_dir):
    run = cli("json cat", "--base-url", emulator.root_url, "--output-dir", str(out_dir), "--json", "-n", "2")
    assert run.code == 0
    doc = run.json
    assert doc["ok"] is True and doc["exit_code"] == 0 and doc["errors"] == []
    assert len(doc["images"]) == 2
    first = doc["images"][0]
    assert set(first) >= {
        "path",
        "width",
        "height",
        "mime",
        "model",
        "route",
        "seconds",
        "retries",
        "warnings",
    }
    assert first["mime"] == "image/png" and first["route"] == "images"


def test_partial_count_keeps_saved_pictures(emulator, out_dir):
    from image_gen_local.emulator import Reply

    run_ok = cli("first", "--base-url", emulator.root_url, "--output-dir", str(out_dir))
    assert run_ok.code == 0
    # picture 1 succeeds, picture 2 hits a permanent error: the first is still reported and kept.
    emulator.script(Reply(200, _png_answer()), Reply(403, "VALIDATION_REQUIRED"))
    run = cli("partial", "--base-url", emulator.root_url, "--output-dir", str(out_dir), "-n", "3")
    assert run.code == 4
    saved = markers(run.stdout)  # two run at once: the third may already be in flight when the 403 comes
    assert 1 <= len(saved) <= 2 and all(path.exists() for path in saved)
    assert sorted(out_dir.iterdir()) == sorted([*run_ok.paths, *saved])


def _png_answer() -> str:
    import base64
    import json

    from helpers import png_bytes

    return json.dumps(
        {"created": 1, "data": [{"b64_json": base64.b64encode(png_bytes((1024, 1024))).decode()}]}
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_request_leaves_nothing(make_emulator, out_dir, sig, code):
    emu = make_emulator(latency=5)
    proc = start_script(
        "slow", "-n", "2", env={"IMAGE_GEN_BASE_URL": emu.root_url, "IMAGE_GEN_OUTPUT_DIR": str(out_dir)}
    )
    wait_until(lambda: any(r.route == "generations" for r in emu.requests))
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert stdout == "" and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert list(out_dir.iterdir()) == []


def test_eight_processes_same_prompt_same_second(emulator, out_dir):
    env = {"IMAGE_GEN_BASE_URL": emulator.root_url, "IMAGE_GEN_OUTPUT_DIR": str(out_dir)}
    with ThreadPoolExecutor(8) as pool:
        procs = list(pool.map(lambda _: run_script("same prompt", env=env, timeout=120), range(8)))
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    paths = [markers(p.stdout)[0] for p in procs]
    assert len(set(paths)) == 8
    assert sorted(out_dir.iterdir()) == sorted(paths)
    for path in paths:
        picture(path)


def test_closed_stdout_stops_cleanly_instead_of_hanging(emulator, out_dir):
    """`image-gen ... | head -1`: the reader goes away; we stop with one line, no traceback, no hang."""
    env = {"IMAGE_GEN_BASE_URL": emulator.root_url, "IMAGE_GEN_OUTPUT_DIR": str(out_dir)}
    proc = start_script("a cat", "-n", "20", env=env)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 9, stderr
    assert "Traceback" not in stderr and "Exception in thread" not in stderr
    assert "stdout was closed" in stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["x", "--timeout", "inf"], "more than 0"),
        (["batch", "jobs.txt", "--concurrency", "²"], "whole number"),
        (["emulator", "--port", "70000"], "cannot listen"),
    ],
)
def test_odd_numbers_are_usage_errors_not_bugs(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.txt").write_text("one\n")
    run = cli(*args)
    assert run.code == 2 and words in run.stderr and "unexpected" not in run.stderr
