from pathlib import Path

import pytest

from image_gen_local.geometry import Ratio
from image_gen_local.jobs import (
    JOB_OPTIONS,
    JobError,
    JobSpec,
    check_jobs,
    parse_line,
    parse_rate,
    read_jobs,
    to_request,
)


def jobs(lines, defaults=None):
    return list(read_jobs(lines, defaults or {}))


def specs(lines, defaults=None):
    found = jobs(lines, defaults)
    assert all(isinstance(item, JobSpec) for item in found), found
    return found


def spec(options, prompt="a cat", line=1):
    return JobSpec(line, prompt, options)


# parse_line


@pytest.mark.parametrize("text", ["", "   ", "\n", "# a comment", "   # indented comment\n"])
def test_blank_lines_and_comments_are_skipped(text):
    assert parse_line(text) is None


def test_plain_text_is_a_prompt_stripped():
    assert parse_line("  a red fox in the snow \n") == {"prompt": "a red fox in the snow"}


def test_a_json_object_gives_its_options():
    line = '{"prompt": "a fox", "aspect_ratio": "16:9", "resolution": "2k", "image": ["a.jpg"], "count": 2}'
    assert parse_line(line) == {
        "prompt": "a fox",
        "aspect_ratio": "16:9",
        "resolution": "2k",
        "image": ["a.jpg"],
        "count": 2,
    }


def test_dashes_and_underscores_name_the_same_option():
    dashed = parse_line('{"prompt": "a fox", "aspect-ratio": "16:9"}')
    underscored = parse_line('{"prompt": "a fox", "aspect_ratio": "16:9"}')
    assert dashed == underscored == {"prompt": "a fox", "aspect_ratio": "16:9"}


def test_null_options_are_dropped():
    assert parse_line('{"prompt": "a fox", "size": null}') == {"prompt": "a fox"}


def test_an_image_given_as_a_string_becomes_a_list():
    assert parse_line('{"prompt": "a fox", "image": "ref.png"}') == {"prompt": "a fox", "image": ["ref.png"]}


@pytest.mark.parametrize("name", ["model", "server", "api-key", "folder", "deadline"])
def test_an_unknown_option_names_the_allowed_ones(name):
    with pytest.raises(ValueError) as caught:
        parse_line(f'{{"prompt": "a fox", "{name}": "x"}}')
    message = str(caught.value)
    assert f"unknown option {name!r}" in message
    for allowed in JOB_OPTIONS:
        assert allowed in message


@pytest.mark.parametrize("text", ["[1, 2]", '"just a quoted string"', "42", "null"])
def test_a_line_not_starting_with_a_brace_is_a_prompt_even_if_it_is_json(text):
    # Only lines starting with `{` are read as JSON; everything else is a prompt (module docstring).
    assert parse_line(text) == {"prompt": text}


@pytest.mark.parametrize("text", ['{"prompt": "a fox",}', '{"prompt": "a fox"', "{not json at all}"])
def test_invalid_json_says_what_and_where(text):
    with pytest.raises(ValueError, match=r"^not valid JSON \(.+ at column \d+\)$"):
        parse_line(text)


# read_jobs


def test_line_numbers_are_file_line_numbers_including_skipped_lines():
    found = jobs(["", "# header", "a cat", "", "{broken", "   ", "a dog"])
    assert [(type(item), item.line) for item in found] == [(JobSpec, 3), (JobError, 5), (JobSpec, 7)]
    assert found[0].prompt == "a cat"
    assert str(found[1]).startswith("line 5: not valid JSON")


def test_defaults_apply_under_each_jobs_own_options_and_none_defaults_are_ignored():
    defaults = {"resolution": "2k", "count": 2, "size": None, "aspect_ratio": None}
    first, second = specs(["a cat", '{"prompt": "a dog", "count": 1, "aspect_ratio": "4:3"}'], defaults)
    assert first.options == {"resolution": "2k", "count": 2}
    assert first.count == 2
    assert second.options == {"resolution": "2k", "count": 1, "aspect_ratio": "4:3"}
    assert second.count == 1
    assert "prompt" not in first.options


def test_read_jobs_turns_a_string_image_into_a_list():
    (only,) = specs(['{"prompt": "a cat", "image": "ref.png"}'])
    assert only.options["image"] == ["ref.png"]


@pytest.mark.parametrize(
    "line",
    ['{"count": 2}', '{"prompt": ""}', '{"prompt": "   "}', '{"prompt": null}', '{"prompt": 5}'],
)
def test_a_missing_or_empty_prompt_is_a_job_error(line):
    (error,) = jobs(["# header", line])
    assert error == JobError(2, "no prompt")
    assert str(error) == "line 2: no prompt"


def test_a_bad_line_does_not_stop_the_following_ones():
    found = jobs(['{"prompt": "a", "colour": "red"}', "a dog"])
    assert isinstance(found[0], JobError) and "unknown option 'colour'" in found[0].message
    assert isinstance(found[1], JobSpec) and found[1].prompt == "a dog"


def test_identical_jobs_get_different_keys_by_occurrence():
    keys = [item.key for item in specs(["a cat", "a cat", '{"prompt": "a cat"}', "a dog"])]
    assert len(set(keys)) == 4
    digests = [key.rsplit("-", 1)[0] for key in keys]
    assert digests[0] == digests[1] == digests[2] != digests[3]
    assert [key.rsplit("-", 1)[1] for key in keys] == ["1", "2", "3", "1"]


def test_the_same_job_keeps_its_key_when_the_file_is_reordered_or_edited():
    before = {item.prompt: item.key for item in specs(["a cat", "a dog", '{"prompt": "a fox", "count": 2}'])}
    after = {
        item.prompt: item.key
        for item in specs(
            ["# added later", "a bird", '{"count": 2, "prompt": "a fox"}', "", "a dog", "a cat"]
        )
    }
    for prompt in ("a cat", "a dog", "a fox"):
        assert after[prompt] == before[prompt]
    assert after["a bird"] not in before.values()


def test_spelling_of_options_does_not_change_the_key():
    keys = {
        item.key
        for item in specs(['{"prompt": "a", "aspect-ratio": "16:9"}'])
        + specs(['{"prompt": "a", "aspect_ratio": "16:9"}'])
        + specs(['{"aspect_ratio": "16:9", "prompt": "a", "size": null}'])
        + specs(["a"], {"aspect_ratio": "16:9", "size": None})
    }
    assert len(keys) == 1
    image_keys = {
        item.key
        for item in specs(['{"prompt": "a", "image": "r.png"}', '{"prompt": "b", "image": ["r.png"]}'])
    }
    assert len(image_keys) == 2  # different prompts
    string, listed = (
        specs(['{"prompt": "a", "image": "r.png"}']),
        specs(['{"prompt": "a", "image": ["r.png"]}']),
    )
    assert string[0].key == listed[0].key


def test_keys_change_when_an_option_or_a_default_changes():
    base = specs(['{"prompt": "a cat", "count": 2}'])[0].key
    assert specs(['{"prompt": "a cat", "count": 3}'])[0].key != base
    assert specs(['{"prompt": "a cat", "count": 2, "resolution": "4k"}'])[0].key != base
    assert specs(['{"prompt": "a cat!", "count": 2}'])[0].key != base
    assert specs(['{"prompt": "a cat", "count": 2}'], {"resolution": "2k"})[0].key != base
    two_k = specs(["a cat"], {"resolution": "2k"})[0].key
    four_k = specs(["a cat"], {"resolution": "4k"})[0].key
    assert two_k != four_k
    # A default the job overrides does not matter.
    assert (
        specs(['{"prompt": "a cat", "resolution": "1k"}'], {"resolution": "2k"})[0].key
        == specs(['{"prompt": "a cat", "resolution": "1k"}'], {"resolution": "4k"})[0].key
    )


def test_label_is_short_and_names_the_line():
    (item,) = specs(["", "a very   long prompt " + "x" * 60])
    assert item.label().startswith("line 2 (")
    assert "…" in item.label()
    assert specs(["a cat"])[0].label() == "line 1 ('a cat')"


# to_request


def test_to_request_defaults(tmp_path):
    request = to_request(spec({}), tmp_path)
    assert request.prompt == "a cat"
    assert request.images == ()
    assert request.size is None
    assert request.resolution == "1K"
    assert request.aspect_ratio is None
    assert request.count == 1
    assert request.output is None


def test_relative_paths_start_from_the_base_folder_and_absolute_ones_are_kept(tmp_path):
    absolute = tmp_path / "elsewhere" / "b.png"
    request = to_request(
        spec({"image": ["a.jpg", str(absolute), "sub/c.webp"], "output": "out/cover.png"}), tmp_path / "batch"
    )
    assert request.images == (tmp_path / "batch" / "a.jpg", absolute, tmp_path / "batch" / "sub" / "c.webp")
    assert request.output == tmp_path / "batch" / "out" / "cover.png"
    kept = to_request(spec({"output": str(absolute)}), tmp_path / "batch")
    assert kept.output == absolute


def test_a_home_relative_path_is_expanded(tmp_path):
    request = to_request(spec({"image": ["~/ref.png"]}), tmp_path)
    assert request.images == (Path.home() / "ref.png",)
    assert request.images[0].is_absolute()


def test_size_resolution_and_aspect_ratio_are_parsed(tmp_path):
    request = to_request(spec({"size": "1920x1080", "resolution": "2k", "aspect_ratio": "16:9"}), tmp_path)
    assert request.size == (1920, 1080)
    assert request.resolution == "2K"
    assert request.aspect_ratio == Ratio(16, 9)
    assert to_request(spec({"aspect_ratio": "32:18"}), tmp_path).aspect_ratio == Ratio(16, 9)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"size": "big"}, "size"),
        ({"size": "100x5000"}, "size"),
        ({"resolution": "8k"}, "resolution"),
        ({"aspect_ratio": "wide"}, "aspect ratio"),
        ({"aspect_ratio": "0:1"}, "aspect ratio"),
        ({"image": 5}, "image must be a path or a list of paths"),
        ({"image": {"a": 1}}, "image must be a path or a list of paths"),
    ],
)
def test_bad_values_raise_value_error(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        to_request(spec(options), tmp_path)


@pytest.mark.parametrize("count, expected", [(1, 1), (3, 3), ("3", 3), (" 4 ", 4), ("03", 3), (0, 0)])
def test_count_accepts_whole_numbers_and_digit_strings(tmp_path, count, expected):
    assert to_request(spec({"count": count}), tmp_path).count == expected


@pytest.mark.parametrize("count", [True, False, 2.0, 2.5, "three", "", "-1", -1, "1e2", [2], None])
def test_count_rejects_anything_but_a_whole_number(tmp_path, count):
    with pytest.raises(ValueError, match="is not a whole number"):
        to_request(spec({"count": count}), tmp_path)


# check_jobs


def test_check_jobs_counts_jobs_and_pictures_and_collects_problems_without_raising(tmp_path):
    lines = [
        "# a batch",
        "a cat",
        '{"prompt": "dogs", "count": 3}',
        "",
        '{"prompt": "x", "size": "huge"}',
        '{"prompt": "y", "model": "other"}',
        '{"prompt": ""}',
        "{oops",
        '{"prompt": "z", "count": "two"}',
    ]
    jobs_found, pictures, problems = check_jobs(lines, {}, tmp_path)
    assert (jobs_found, pictures) == (2, 4)
    assert [problem.split(":", 1)[0] for problem in problems] == [
        "line 5",
        "line 6",
        "line 7",
        "line 8",
        "line 9",
    ]
    assert "size 'huge'" in problems[0]
    assert "unknown option 'model'" in problems[1]
    assert problems[2] == "line 7: no prompt"
    assert "not valid JSON" in problems[3]
    assert "count 'two' is not a whole number" in problems[4]


def test_check_jobs_applies_defaults(tmp_path):
    jobs_found, pictures, problems = check_jobs(
        ["a cat", '{"prompt": "b", "count": 1}'], {"count": 4}, tmp_path
    )
    assert (jobs_found, pictures, problems) == (2, 5, [])
    _, _, problems = check_jobs(["a cat", "a dog"], {"resolution": "9k"}, tmp_path)
    assert [problem.split(":", 1)[0] for problem in problems] == ["line 1", "line 2"]


def test_check_jobs_reports_a_count_out_of_range(tmp_path):
    jobs, pictures, problems = check_jobs(
        ['{"prompt": "a", "count": 0}', '{"prompt": "b", "count": 101}'], {}, tmp_path
    )
    assert problems == [
        "line 1: --count 0 is out of range; use 1 to 100",
        "line 2: --count 101 is out of range; use 1 to 100",
    ]
    assert (jobs, pictures) == (0, 0)


def test_check_jobs_of_an_empty_file(tmp_path):
    assert check_jobs(["", "# nothing"], {}, tmp_path) == (0, 0, [])


# parse_rate


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30/min", 30.0),
        ("30", 30.0),
        ("30/m", 30.0),
        ("30/minute", 30.0),
        (" 30 / MIN ", 30.0),
        ("0.5/s", 30.0),
        ("2/sec", 120.0),
        ("600/h", 10.0),
        ("60/hour", 1.0),
        ("1.5", 1.5),
    ],
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "fast", "30/day", "/min", "30/min/s", "x/s", "0", "0/s", "-5/min"])
def test_parse_rate_rejects_bad_rates(text):
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_parse_rate_rejects_nan():
    with pytest.raises(ValueError):
        parse_rate("nan/min")


def test_a_byte_order_mark_does_not_turn_the_first_json_job_into_a_prompt():
    (first, second) = specs(['\ufeff{"prompt": "a fox", "aspect_ratio": "16:9"}\n', '{"prompt": "a whale"}'])
    assert first.prompt == "a fox" and first.options == {"aspect_ratio": "16:9"}
    assert first.key == specs(['{"prompt": "a fox", "aspect_ratio": "16:9"}'])[0].key  # same job as without
    assert second.prompt == "a whale"
    (plain,) = specs(["\ufeffa red fox\n"])
    assert plain.prompt == "a red fox"


def test_two_jobs_naming_one_output_file_are_refused_before_any_request(tmp_path):
    lines = [
        '{"prompt": "a cat", "output": "cover.png"}',
        '{"prompt": "a dog", "output": "covers/../cover.png"}',
        '{"prompt": "a cat", "output": "cover.png"}',
        '{"prompt": "a bird", "output": "back.png"}',
    ]
    jobs_found, _, problems = check_jobs(lines, {}, tmp_path)
    where = tmp_path / "cover.png"
    assert jobs_found == 2
    assert problems == [
        f"line 2: output {where} is already line 1's",
        f"line 3: output {where} is already line 1's",
    ]
