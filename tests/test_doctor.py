from helpers import cli


def doctor(*args):
    return cli("doctor", *args)


def test_healthy_emulator(emulator, out_dir):
    run = doctor("--base-url", emulator.root_url, "--output-dir", str(out_dir))
    assert run.code == 0, run.stdout + run.stderr
    text = run.stdout
    assert "[ok] server: reachable" in text and "antigravity" in text
    assert "[ok] images API (/images/generations)" in text
    assert "[ok] edits API" in text and "[ok] chat API" in text
    assert "[ok] output folder" in text
    # the route probes cost no picture
    assert not [r for r in emulator.requests if r.effective_prompt]


def test_unreachable(out_dir):
    run = doctor("--base-url", "http://127.0.0.1:9", "--output-dir", str(out_dir))
    assert run.code == 3
    assert run.stdout.splitlines()[0].startswith("[FAIL] server")


def test_key_required(make_emulator, out_dir):
    emu = make_emulator(api_key="sk-doc-secret")
    run = doctor("--base-url", emu.root_url, "--output-dir", str(out_dir))
    assert run.code == 4 and "[FAIL] API key" in run.stdout
    run = doctor("--base-url", emu.root_url, "--output-dir", str(out_dir), "--api-key", "sk-doc-secret")
    assert run.code == 0 and "sk-doc-secret" not in run.stdout + run.stderr


def test_unwritable_output(emulator, tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("")
    run = doctor("--base-url", emulator.root_url, "--output-dir", str(blocker))
    assert run.code == 9 and "[FAIL] output folder" in run.stdout


def test_model_not_listed_is_a_warning(emulator, out_dir):
    run = doctor("--base-url", emulator.root_url, "--output-dir", str(out_dir), "--model", "gemini-9-image")
    assert run.code == 0 and "[warn] image models" in run.stdout
