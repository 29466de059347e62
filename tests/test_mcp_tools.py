"""The MCP tools' plain-Python half: where relative paths lead, the refusals, the rules text's one source."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT, png_bytes
from image_gen_local.config import Settings
from image_gen_local.errors import ExitCode, InputImageError, UsageError
from image_gen_local.mcp_tools import Service, error_line, file_path, prompt_rules, skill_file


def service(tmp_path: Path) -> Service:
    return Service(Settings(output_dir=tmp_path / "out"), {}, cwd=tmp_path / "work")


def test_a_relative_output_folder_lies_in_the_configured_one(tmp_path):
    svc = service(tmp_path)
    assert svc.output_dir(None) == tmp_path / "out"
    assert svc.output_dir("covers/2") == tmp_path / "out" / "covers" / "2"
    assert svc.output_dir(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"


def test_a_relative_output_folder_cannot_climb_out_of_the_configured_one(tmp_path):
    for value in ("..", "../../etc", "covers/../../x"):
        with pytest.raises(UsageError, match="climbs out"):
            service(tmp_path).output_dir(value)
    assert service(tmp_path).output_dir("a..b") == tmp_path / "out" / "a..b"


def test_an_input_is_found_in_the_working_folder_then_the_output_folder(tmp_path):
    svc = service(tmp_path)
    for folder, name in ((tmp_path / "work", "photo.png"), (tmp_path / "out", "made.png")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(png_bytes((64, 64)))
    assert svc.input_path("photo.png", svc.output_dir(None)) == tmp_path / "work" / "photo.png"
    assert svc.input_path("made.png", svc.output_dir(None)) == tmp_path / "out" / "made.png"
    uri = (tmp_path / "out" / "made.png").as_uri()
    assert svc.input_path(uri, svc.output_dir(None)) == tmp_path / "out" / "made.png"
    with pytest.raises(InputImageError, match="not found in"):
        svc.input_path("missing.png", svc.output_dir(None))


def test_history_references_are_refused_until_history_exists(tmp_path):
    for reference in ("@last", "@2"):
        with pytest.raises(UsageError, match="history"):
            service(tmp_path).input_path(reference, tmp_path)


def test_a_bad_option_is_refused_by_the_command_lines_parser_before_anything(tmp_path):
    svc = service(tmp_path)
    with pytest.raises(UsageError, match="1920x1080"):
        svc.prepare("a cat", size="big")
    with pytest.raises(UsageError, match="model name is empty"):
        svc.prepare("a cat", model=" ")
    assert not (tmp_path / "out").exists()


def test_file_uris_and_home_paths_are_plain_paths():
    assert file_path("file:///tmp/a%20b.png") == Path("/tmp/a b.png")
    assert file_path("~/x.png") == Path.home() / "x.png"


def test_an_error_line_carries_the_fix_and_the_exit_class():
    line = error_line(UsageError("the prompt is empty", "describe the picture"))
    assert line == "the prompt is empty; describe the picture [exit 2: usage]"
    assert ExitCode.USAGE.name.lower() in line


def test_the_prompt_rules_are_skill_mds_own_section():
    found = skill_file()  # the root's SKILL.md in a checkout, the wheel's copy of it when installed
    assert found is not None and found.read_bytes() == (ROOT / "SKILL.md").read_bytes()
    rules = prompt_rules()
    assert rules.startswith("## Core rule") and rules in (ROOT / "SKILL.md").read_text(encoding="utf-8")
    assert "## How to run it" not in rules
