import pytest

from image_gen_local.errors import ExitCode, UsageError
from image_gen_local.servers import (
    ServerCache,
    ServerInfo,
    check_model,
    detect_kind,
    image_model_ids,
    other_tier,
    root_url,
)
from image_gen_local.upstream import ANTIGRAVITY, CLIPROXYAPI, LITELLM, OPENAI


def _models(*ids, owner="antigravity"):
    return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": owner} for i in ids]}


def test_detect_kind():
    assert (
        detect_kind("http://127.0.0.1:8045/v1", _models("gemini-3-pro-image", "gemini-3-pro-image-16x9"))
        == ANTIGRAVITY
    )
    assert detect_kind("http://127.0.0.1:8045/v1", _models("gemini-3.1-flash-image")) == ANTIGRAVITY
    assert (
        detect_kind("http://127.0.0.1:8317/v1", _models("gemini-3.1-flash-image", owner="google"))
        == CLIPROXYAPI
    )
    assert detect_kind("https://api.openai.com/v1", _models("gpt-image-1", owner="openai")) == OPENAI
    assert detect_kind("http://127.0.0.1:4000/v1", _models("gpt-image-1", owner="openai")) == OPENAI


def test_other_tier():
    assert other_tier("gemini-3-pro-image") == "gemini-3.1-flash-image"
    assert other_tier("gemini-3.1-flash-image") == "gemini-3-pro-image"
    assert other_tier("gpt-4o") is None


def test_cache_round_trip_and_expiry(tmp_path):
    cache = ServerCache(tmp_path, ttl=100)
    cache.put("http://a/v1", ServerInfo(CLIPROXYAPI, ["m"], 1000.0))
    assert cache.get("http://a/v1", now=1050).kind == CLIPROXYAPI
    assert cache.get("http://a/v1", now=1200) is None
    assert cache.get("http://b/v1", now=1050) is None
    (tmp_path / "servers.json").write_text("{broken")
    assert cache.get("http://a/v1") is None


def test_litellm_is_known_by_its_headers_or_its_model_info():
    plain = _models("gemini-3-pro-image", owner="openai")
    assert detect_kind("http://127.0.0.1:4000/v1", plain, {"x-litellm-version": "1.106.2"}) == LITELLM
    with_mode = {"data": [{"id": "my-pictures", "owned_by": "openai", "mode": "image_generation"}]}
    assert detect_kind("http://127.0.0.1:4000/v1", with_mode) == LITELLM
    assert image_model_ids(with_mode) == ["my-pictures"]


def test_image_models_on_offer_leave_out_the_grid_aliases():
    listed = _models("gemini-3-pro-image", "gemini-3-pro-image-16x9", "gemini-3-flash", "dall-e-3")
    assert image_model_ids(listed) == ["dall-e-3", "gemini-3-pro-image"]


def test_the_root_url_drops_v1():
    assert root_url("http://127.0.0.1:4000/v1/") == "http://127.0.0.1:4000"
    assert root_url("http://h/proxy") == "http://h/proxy"


GATEWAY = ServerInfo(LITELLM, ["gemini-3.1-flash-image", "gpt-4o"], 0.0, ["gemini-3.1-flash-image"])


def test_a_listed_model_or_a_server_whose_list_is_not_complete_is_used_as_given():
    assert check_model("gemini-3.1-flash-image", GATEWAY) == ("gemini-3.1-flash-image", None)
    antigravity = ServerInfo(ANTIGRAVITY, ["gemini-3-pro-image"], 0.0)
    assert check_model("gemini-3-pro-image-4k-16x9", antigravity) == ("gemini-3-pro-image-4k-16x9", None)
    assert check_model("anything", None) == ("anything", None)


def test_a_missing_tier_falls_back_to_the_other_listed_one_and_says_so():
    model, note = check_model("gemini-3-pro-image", GATEWAY)
    assert model == "gemini-3.1-flash-image" and "not offered" in note and "other tier" in note


def test_an_unknown_model_is_a_usage_error_naming_the_image_models_on_offer():
    with pytest.raises(UsageError) as caught:
        check_model("gemini-9-ultra-image", GATEWAY)
    assert caught.value.exit_code is ExitCode.USAGE
    assert "gemini-3.1-flash-image" in str(caught.value) and "gpt-4o" not in str(caught.value)
