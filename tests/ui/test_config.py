"""The UI's own configuration: secrets first, then environment, then defaults."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

UI = Path(__file__).resolve().parents[2] / "streamlit_app"


@pytest.fixture
def config_module() -> Iterator[ModuleType]:
    sys.path.insert(0, str(UI))
    try:
        import fsui.config

        yield fsui.config
    finally:
        sys.path.remove(str(UI))


def test_defaults_without_secrets_or_env(config_module: ModuleType) -> None:
    cfg = config_module.load_config()
    assert cfg.api_url == "http://127.0.0.1:8000"
    assert cfg.api_key is None
    assert cfg.max_upload_bytes == 4 * 1024 * 1024


def test_env_is_read_and_cleaned(
    config_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASHION_SEARCH_UI_API_URL", " https://api.example.com/Prod/ ")
    monkeypatch.setenv("FASHION_SEARCH_UI_API_KEY", "k1")
    monkeypatch.setenv("FASHION_SEARCH_UI_TIMEOUT_S", "7.5")
    cfg = config_module.load_config()
    assert (cfg.api_url, cfg.api_key, cfg.timeout_s) == ("https://api.example.com/Prod", "k1", 7.5)


def test_a_malformed_number_falls_back_and_says_so(
    config_module: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FASHION_SEARCH_UI_TIMEOUT_S", "soon")
    assert config_module.load_config().timeout_s == config_module.DEFAULT_TIMEOUT_S
    assert "FASHION_SEARCH_UI_TIMEOUT_S='soon' is not a number" in caplog.text


def test_key_fingerprint_separates_keys_without_holding_them(config_module: ModuleType) -> None:
    make = config_module.UiConfig
    a = make(api_url="u", api_key="secret-a", timeout_s=1.0, max_upload_mb=4)
    b = make(api_url="u", api_key="secret-b", timeout_s=1.0, max_upload_mb=4)
    assert a.key_fingerprint != b.key_fingerprint
    assert "secret-a" not in a.key_fingerprint
