from image_gen_local.servers import ServerCache, ServerInfo, detect_kind, other_tier
from image_gen_local.upstream import ANTIGRAVITY, CLIPROXYAPI, OPENAI


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
