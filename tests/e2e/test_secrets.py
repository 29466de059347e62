"""The API key never appears in stdout, stderr, --dry-run, --verbose, --json, errors or files (pictures and
their recipes, the manifest, the cache, the history), on any path."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import cli, png_bytes, run_script
from image_gen_local.emulator import Reply

KEY = "sk-Very-Secret-9f8e7d6c5b4a"


def every_file_under(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]


def test_key_never_leaks(make_emulator, tmp_path):
    emu = make_emulator(api_key=KEY)
    wrong = make_emulator(api_key="sk-some-other-key")
    out = tmp_path / "out"
    base = ["--output-dir", str(out), "--api-key", KEY]
    photo = tmp_path / "in.png"
    photo.write_bytes(png_bytes((300, 300)))
    runs = [
        cli("ok", "--base-url", emu.root_url, *base, "-v", "--json"),
        cli("ok", "--base-url", emu.root_url, *base, "-v", "--image", str(photo), "-n", "2"),
        cli("dry", "--base-url", emu.root_url, *base, "--dry-run", "--image", str(photo)),
        cli("dry", "--base-url", emu.root_url, *base, "--dry-run", "--route", "chat", "-v"),
        cli("denied", "--base-url", wrong.root_url, *base, "-v", "--json"),
        cli("unreachable", "--base-url", "http://127.0.0.1:9", *base, "-v"),
        cli("doctor", "--base-url", emu.root_url, *base[2:], "-v"),
        cli("doctor", "--base-url", wrong.root_url, *base[2:]),
        cli("bad", "--base-url", emu.root_url, *base, "--size", "0x0"),
    ]
    # a server that echoes the key back in its error text, and an answer that is not a picture
    emu.script(Reply(400, f"invalid token {KEY} for this account"), "bomb")
    runs.append(cli("echo", "--base-url", emu.root_url, *base, "-v", "--json"))
    runs.append(cli("bomb", "--base-url", emu.root_url, *base, "-v"))
    # the key from the environment, in a real process
    env = {"IMAGE_GEN_BASE_URL": emu.root_url, "IMAGE_GEN_OUTPUT_DIR": str(out), "IMAGE_GEN_API_KEY": KEY}
    process = run_script("from env", "-v", "--json", env=env)
    assert process.returncode == 0, process.stderr

    # a batch whose server echoes the key: the manifest must not keep it
    emu.script(Reply(400, f"invalid token {KEY} for this account"))
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("echo job\n")
    runs.append(cli("batch", str(jobs), "--base-url", emu.root_url, *base, "--concurrency", "1"))
    assert list(out.glob("*.manifest.jsonl"))

    assert runs[0].code == 0 and runs[4].code == 4 and runs[-3].code == 3 and runs[-1].code == 3
    assert all(r.authorized for r in emu.requests if r.route in ("generations", "edits", "chat"))
    texts = [text for r in runs for text in (r.stdout, r.stderr)] + [process.stdout, process.stderr]
    assert any("***" in text for text in texts)  # redaction was exercised, not just absent
    for text in texts:
        assert KEY not in text
    history = Path(os.environ["XDG_DATA_HOME"])  # the history: every row, its WAL, every recipe
    written = every_file_under(out, Path(os.environ["IMAGE_GEN_CACHE_DIR"]), tmp_path, history)
    assert len(written) >= 5 and any(p.name == "history.sqlite3" for p in written)
    assert any(b"image-gen-local recipe" in p.read_bytes() for p in written if p.suffix == ".png")
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
