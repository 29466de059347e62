import pytest

from image_gen_local.config import DEFAULT_BASE_URL, normalise_base_url, resolve
from image_gen_local.errors import UsageError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8045", "http://127.0.0.1:8045/v1"),
        ("http://127.0.0.1:8045/", "http://127.0.0.1:8045/v1"),
        ("http://127.0.0.1:8045/v1/", "http://127.0.0.1:8045/v1"),
        ("https://proxy.example/openai/v1", "https://proxy.example/openai/v1"),
    ],
)
def test_base_url_with_or_without_v1(given, expected):
    assert normalise_base_url(given) == expected


@pytest.mark.parametrize("bad", ["127.0.0.1:8045", "ftp://host/v1", "file:///tmp", "localhost"])
def test_base_url_needs_http(bad):
    with pytest.raises(UsageError):
        normalise_base_url(bad)


def test_precedence_flags_env_file_defaults(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('model = "from-file"\nbase_url = "http://file:1"\ntimeout = 30\nroute = "chat"\n')
    env = {"IMAGE_GEN_CONFIG": str(config), "IMAGE_GEN_BASE_URL": "http://env:2"}
    settings = resolve({"route": "images"}, env)
    assert settings.route == "images"  # flag
    assert settings.base_url == "http://env:2/v1"  # env beats file
    assert settings.model == "from-file"  # file beats default
    assert settings.timeout == 30
    assert resolve({}, {"XDG_CONFIG_HOME": str(tmp_path / "none")}).base_url == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    ("key", "value"), [("timeout", "0"), ("timeout", "-1"), ("timeout", "soon"), ("route", "fax")]
)
def test_bad_values(key, value, tmp_path):
    with pytest.raises(UsageError):
        resolve({key: value}, {"XDG_CONFIG_HOME": str(tmp_path)})


def test_bad_config_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("colour = 'blue'\n")
    with pytest.raises(UsageError, match="unknown keys"):
        resolve({}, {"IMAGE_GEN_CONFIG": str(config)})


def test_repr_hides_key(tmp_path):
    settings = resolve({"api_key": "sk-secret-123"}, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert "sk-secret-123" not in repr(settings)
