"""A newcomer's first ten minutes and an agent's hundredth run, end to end: every item of the review.

Each test runs the real command (in-process, or as `scripts/gen.py` in a new process, or under a
pseudo-terminal where the item is about a terminal) against the real emulator.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from helpers import ROOT, cli, markers, run_script, start_script, wait_until
from image_gen_local.manifest import Manifest


def posts(emu):
    return [r for r in emu.requests if r.route in ("generations", "edits", "chat")]


def gen(emu, out: Path, *args: str):
    return cli(*args, "--base-url", emu.root_url, "--output-dir", str(out))


def jobs_file(path: Path, *prompts: str) -> Path:
    path.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return path


# 1. a mistyped command is refused for free -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "hint"),
    [
        ("doctr", "did you mean `image-gen doctor`?"),
        ("bacth", "did you mean `image-gen batch`?"),
        ("emulator", "did you mean `image-gen emulator`?"),  # equal to a command, after an option
        ("gallary", "did you mean `image-gen gallery`?"),
        ("mcpp", "did you mean `image-gen mcp`?"),
        ("histroy", "did you mean `image-gen history`?"),
        ("help", "is not a command (yet)"),
    ],
)
def test_a_one_word_prompt_close_to_a_command_is_refused_for_free(emulator, out_dir, word, hint):
    run = gen(emulator, out_dir, word) if word != "emulator" else gen(emulator, out_dir, "-v", word)
    assert run.code == 2 and run.stdout == ""
    assert hint in run.stderr and f"image-gen generate {word}" in run.stderr
    assert posts(emulator) == [] and not out_dir.exists()


def test_the_word_itself_is_drawn_when_asked_on_purpose(emulator, out_dir):
    run = gen(emulator, out_dir, "generate", "doctr")
    assert run.code == 0 and len(run.paths) == 1
    assert posts(emulator)[0].effective_prompt == "doctr"


def test_ordinary_one_word_prompts_are_not_mistaken_for_commands(emulator, out_dir):
    assert gen(emulator, out_dir, "lighthouse").code == 0


# 2. an unquoted prompt and a misspelt option ---------------------------------------------------------------


def test_an_unquoted_prompt_is_shown_back_quoted(emulator, out_dir):
    run = gen(emulator, out_dir, "a", "cute", "cat")
    assert run.code == 2 and posts(emulator) == []
    assert "the prompt is one argument, but it came as 3 words" in run.stderr
    assert "quote it: image-gen 'a cute cat'" in run.stderr


def test_a_misspelt_option_gets_did_you_mean(emulator, out_dir):
    run = gen(emulator, out_dir, "a cat", "--resolutoin", "2k")
    assert run.code == 2 and "did you mean --resolution?" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# 3. saved pictures follow the umask ------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_pictures_get_the_mode_any_file_the_user_creates_gets(emulator, tmp_path, umask, mode):
    env = {**os.environ, "IMAGE_GEN_BASE_URL": emulator.root_url, "IMAGE_GEN_OUTPUT_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "scripts/gen.py", "mode test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(umask),
    )
    [path] = markers(proc.stdout)
    assert path.stat().st_mode & 0o777 == mode


# 4. the progress bar and the result lines never share a line -----------------------------------------------


def _run_in_pty(argv: list[str], env: dict[str, str], columns: int, timeout: float = 60) -> tuple[int, str]:
    """Run with stdout and stderr on one pseudo-terminal of `columns` columns; all it printed, in order."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", "replace")


def _script_env(emu, out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(IMAGE_GEN_BASE_URL=emu.root_url, IMAGE_GEN_OUTPUT_DIR=str(out))
    return env


def test_on_a_terminal_result_lines_start_their_own_line(make_emulator, tmp_path):
    emu = make_emulator(latency=0.3)
    jobs = jobs_file(tmp_path / "jobs.txt", *(f"bar test {i}" for i in range(6)))
    argv = [sys.executable, "scripts/gen.py", "batch", str(jobs), "--concurrency", "2"]
    code, screen = _run_in_pty(argv, _script_env(emu, tmp_path / "out"), columns=120)
    assert code == 0, screen
    pieces = [piece.rstrip("\r") for piece in screen.split("\n") if "[IMAGE_PATH]" in piece]
    lines = [piece.split("\r")[-1] for piece in pieces]  # what is left on the line once the bar is cleared
    assert len(lines) == 6
    assert all(line.startswith("[IMAGE_PATH]") for line in lines), lines


def test_a_zero_column_terminal_still_shows_progress(make_emulator, tmp_path):
    emu = make_emulator(latency=2.2)
    jobs = jobs_file(tmp_path / "jobs.txt", "slow one", "slow two", "slow three")
    argv = [sys.executable, "scripts/gen.py", "batch", str(jobs), "--concurrency", "1"]
    code, screen = _run_in_pty(argv, _script_env(emu, tmp_path / "out"), columns=0)
    assert code == 0, screen
    assert re.search(r"batch: \d/3 pictures", screen), screen  # the plain progress line


# 5. Ctrl-C in a batch cancels, it does not fail ------------------------------------------------------------


def test_ctrl_c_in_a_batch_cancels_the_rest_and_says_how_to_resume(make_emulator, tmp_path):
    emu = make_emulator(latency=0.5)
    jobs = jobs_file(tmp_path / "jobs.txt", *(f"cancel test {i}" for i in range(8)))
    out = tmp_path / "out"
    proc = start_script("batch", str(jobs), "--concurrency", "1", env=_script_env(emu, out))
    wait_until(lambda: len(list(out.glob("*.png"))) >= 2)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=30)[1]
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stderr and "failed" not in stderr
    assert re.search(r"\d of 8 picture\(s\) are done", stderr)
    statuses = [r["status"] for r in Manifest(out / "jobs.manifest.jsonl").records() if r["type"] == "job"]
    assert "failed" not in statuses and "cancelled" in statuses
    rerun = run_script("batch", str(jobs), env=_script_env(emu, out))
    assert rerun.returncode == 0 and len(markers(rerun.stdout)) == 8


# 6. a rerun lists every picture, and --json says which are new ---------------------------------------------


def test_a_rerun_lists_every_picture_and_json_says_none_is_new(emulator, tmp_path):
    jobs = jobs_file(tmp_path / "jobs.txt", "one", "two")
    out = tmp_path / "out"
    first = cli("batch", str(jobs), "--json", "--base-url", emulator.root_url, "--output-dir", str(out))
    again = cli("batch", str(jobs), "--json", "--base-url", emulator.root_url, "--output-dir", str(out))
    assert [i["new"] for i in first.json["images"]] == [True, True]
    assert [i["new"] for i in again.json["images"]] == [False, False]
    assert {i["path"] for i in again.json["images"]} == {i["path"] for i in first.json["images"]}


# 7. the client says plainly when the server is the emulator -------------------------------------------------


def test_pictures_from_the_emulator_are_called_synthetic_on_stderr_and_in_json(emulator, out_dir):
    plain = gen(emulator, out_dir, "a cat")
    assert plain.code == 0 and "SYNTHETIC" in plain.stderr
    document = gen(emulator, out_dir, "a cat", "--json", "-n", "2").json
    assert all(any("SYNTHETIC" in w for w in image["warnings"]) for image in document["images"])


def test_doctor_says_the_server_is_the_emulator(emulator):
    run = cli("doctor", "--base-url", emulator.root_url)
    assert run.code == 0 and "image-gen-local emulator" in run.stdout and "SYNTHETIC" in run.stdout


# 8. messages name the command the user ran -----------------------------------------------------------------


def test_in_skill_mode_messages_name_the_script_not_the_installed_command():
    proc = run_script("x", "--zzz")
    assert proc.returncode == 2
    assert "python3 scripts/gen.py --help" in proc.stderr and "`image-gen --help`" not in proc.stderr


# 9. --help shows the defaults; no arguments show usage and examples ----------------------------------------


def test_help_shows_the_defaults_and_where_to_change_them():
    proc = run_script("--help")
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0
    for words in ("~/clawd/tmp/image-gen", "IMAGE_GEN_OUTPUT_DIR", "http://127.0.0.1:8045/v1", "600 s",
                  "gemini-3-pro-image", "config.toml"):  # fmt: skip
        assert words in text, words


def test_no_arguments_show_short_usage_and_three_examples():
    run = cli()
    assert run.code == 2 and run.stdout == ""
    assert run.stderr.startswith("usage: image-gen PROMPT")
    assert sum(line.startswith("  image-gen '") for line in run.stderr.splitlines()) == 3


# 10. --json keeps its promise on a usage error -------------------------------------------------------------


def test_json_with_a_usage_error_still_prints_one_document():
    run = cli("x", "--json", "--resolution", "8k")
    assert run.code == 2
    document = json.loads(run.stdout)
    assert document["ok"] is False and document["exit_code"] == 2
    assert "resolution" in document["errors"][0]["message"]


# 12. wording -----------------------------------------------------------------------------------------------


def test_a_refusal_reads_as_one_sentence_then_the_fix(emulator, out_dir):
    emulator.script("content-filter")
    run = gen(emulator, out_dir, "a cat")
    assert run.code == 6 and ".;" not in run.stderr


def test_an_unreachable_server_points_at_doctor_but_doctor_does_not_point_at_itself():
    generate = cli("x", "--base-url", "http://127.0.0.1:9", "--timeout", "5")
    doctor = cli("doctor", "--base-url", "http://127.0.0.1:9")
    assert generate.code == 3 and "`image-gen doctor` checks the server" in generate.stderr
    assert doctor.code == 3 and "doctor" not in (doctor.stdout + doctor.stderr).replace(
        "image-gen doctor", ""
    )


def test_the_emulator_stops_quietly_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "scripts/gen.py", "emulator", "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.stderr is not None
    assert "emulator on http://" in proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=15)[1]
    assert proc.returncode == 0 and "error" not in rest and "emulator stopped" in rest


def test_batch_help_says_for_every_job_once():
    proc = run_script("batch", "--help")
    assert proc.returncode == 0 and "(default 1k) (default for every job)" not in proc.stdout
    assert "for every job" in proc.stdout


def test_every_bad_line_is_named_when_there_is_room(emulator, tmp_path):
    jobs = jobs_file(tmp_path / "jobs.txt", *(f'{{"prompt": "p{i}", "size": "huge"}}' for i in range(4)))
    run = cli("batch", str(jobs), "--base-url", emulator.root_url, "--output-dir", str(tmp_path / "out"))
    assert run.code == 2 and all(f"line {i}" in run.stderr for i in range(1, 5)) and "more)" not in run.stderr


def test_a_broken_json_line_is_worded_once():
    from image_gen_local.jobs import parse_line

    with pytest.raises(ValueError) as caught:
        parse_line('{"prompt": "unterminated')
    assert "at at" not in str(caught.value)


def test_n_pictures_are_numbered_so_ls_lists_them_in_order(emulator, out_dir):
    run = gen(emulator, out_dir, "three boats", "-n", "3")
    names = sorted(p.name for p in run.paths)
    assert run.code == 0 and [n.rsplit("-", 1)[1] for n in names] == ["1.png", "2.png", "3.png"]


def test_n_pictures_saved_in_different_seconds_share_one_name_but_their_number(make_emulator, out_dir):
    slow = make_emulator(latency=1.1)  # at most two at once: the third is saved over a second after the first
    run = gen(slow, out_dir, "three slow boats", "-n", "3")
    stems = {p.name.rsplit("-", 1)[0] for p in run.paths}
    assert run.code == 0 and len(run.paths) == 3 and len(stems) == 1, run.paths


# 13. what a real agent reads in SKILL.md -------------------------------------------------------------------


def test_skill_md_explains_basedir_first_and_every_example_path_is_a_placeholder():
    text = (ROOT / "SKILL.md").read_text(encoding="utf-8")
    body = text.split("---", 2)[2]
    explained = body.index("`{baseDir}` below means the folder that holds this SKILL.md")
    assert explained < body.index("{baseDir}/scripts/gen.py")
    for sample in re.findall(r"\[IMAGE_PATH\]([^`\]]+)\[/IMAGE_PATH\]", body):
        assert sample.startswith("<") and sample.endswith(">"), sample
    commands = [line for line in body.splitlines() if line.startswith("python3 ")]
    for sample in re.findall(r"--image (\S+)", "\n".join(commands)):
        assert sample.startswith("<") or re.fullmatch(r"@(last|\d+)", sample), sample  # or a reference
    assert "only from the command's own output" in body
