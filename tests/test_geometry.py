import pytest

from image_gen_local import geometry
from image_gen_local.geometry import Ratio, fit, parse_ratio, parse_size, parse_tier, plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16:9", Ratio(16, 9)), ("32:18", Ratio(16, 9)), ("2.39:1", Ratio(239, 100)), (" 9:21 ", Ratio(3, 7))],
)
def test_parse_ratio_reduces(text, expected):
    assert parse_ratio(text) == expected


@pytest.mark.parametrize("text", ["0:1", "16/9", "wide", "1:0", "-1:2", "1:2:3", "20:1", ""])
def test_parse_ratio_refuses(text):
    with pytest.raises(ValueError):
        parse_ratio(text)


@pytest.mark.parametrize("text", ["1024*1024", "0x0", "-5x10", "abc", "10x", "1024x1024x3", "5000x10"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_parse_size_accepts_common_forms():
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_size("1920X1080") == (1920, 1080)
    assert parse_size("800×600") == (800, 600)


def test_parse_tier_is_case_insensitive_and_strict():
    assert parse_tier("4k") == "4K"
    assert parse_tier("2K") == "2K"
    with pytest.raises(ValueError):
        parse_tier("8k")


def test_supported_ratio_is_asked_as_is():
    p = plan(Ratio(16, 9), "2K")
    assert p.request_ratio == Ratio(16, 9)
    assert p.expected_size == (2752, 1536)
    assert p.delivered_size == (2752, 1536)


def test_unsupported_ratio_asks_nearest_then_crops():
    p = plan(parse_ratio("9:21"), "1K")
    assert p.request_ratio == Ratio(9, 16)
    assert p.expected_size == (768, 1376)
    w, h = p.delivered_size
    assert h == 1376 and abs(w / h - 9 / 21) < 0.002


def test_size_picks_smallest_covering_tier():
    p = plan(size=(1920, 1080))
    assert p.request_ratio == Ratio(16, 9)
    assert p.tier == "2K"  # 1K 16:9 is only 1376x768
    assert p.delivered_size == (1920, 1080)
    assert plan(size=(1024, 1024)).tier == "1K"
    assert plan(size=(4000, 4000)).tier == "4K"


def test_size_beyond_largest_tier_names_the_limit():
    with pytest.raises(ValueError, match="4096x4096"):
        plan(size=(99999 // 10, 99999 // 10))


def test_fit_crops_and_resizes_to_exact_size():
    p = plan(size=(1000, 1000))
    box, resize = fit((1024, 1024), p)
    assert box is None and resize == (1000, 1000)
    p = plan(
        parse_ratio("2:1"), "1K"
    )  # nearest is 21:9? no: 16:9 (1.78) vs 21:9 (2.33): 16:9 wins on log scale
    assert p.request_ratio == Ratio(16, 9)
    box, resize = fit((1376, 768), p)
    assert resize is None and box == (0, 40, 1376, 728)


def test_fit_keeps_the_servers_rendering_of_a_supported_ratio():
    assert fit((2752, 1536), plan(Ratio(16, 9), "2K")) == (None, None)
    assert fit((1200, 896), plan(Ratio(4, 3), "1K")) == (None, None)


def test_fit_crops_when_server_ignored_ratio():
    p = plan(Ratio(16, 9), "1K")
    box, _ = fit((1024, 1024), p)
    assert box is not None
    assert (box[2] - box[0], box[3] - box[1]) == (1024, 576)


def test_snap_ratio_only_near_supported():
    assert geometry.snap_ratio(Ratio.of(4032, 3025)) == Ratio(4, 3)
    assert geometry.snap_ratio(Ratio.of(1170, 2532)) == Ratio.of(1170, 2532)


def test_tier_of_detects_ignored_tier():
    assert geometry.tier_of((1376, 768), Ratio(16, 9)) == "1K"
    assert geometry.tier_of((5504, 3072), Ratio(16, 9)) == "4K"
    assert geometry.tier_of((1400, 1400), Ratio(1, 1)) is None


def test_ratios_print_as_the_server_names_them():
    assert str(parse_ratio("21:9")) == "21:9"
    assert str(parse_ratio("42:18")) == "21:9"
    assert parse_ratio("21:9").supported
    assert geometry.server_size(parse_ratio("21:9"), "1K") == (1584, 672)
    assert str(parse_ratio("9:21")) == "3:7"


def test_every_table_size_has_its_ratio():
    for (w, h), tiers in geometry.SERVER_SIZES.items():
        for pw, ph in tiers.values():
            assert abs((pw / ph) / (w / h) - 1) < 0.02
