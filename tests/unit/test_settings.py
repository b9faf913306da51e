"""The one settings object: embedded by default, AWS from the environment or ``.env``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fashion_search.errors import ConfigError
from fashion_search.settings import Home, Settings
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``FASHION_SEARCH_*`` variables or ``.env`` from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("FASHION_SEARCH_"):
            monkeypatch.delenv(name)


def test_embedded_is_the_default_home() -> None:
    settings = Settings()
    assert settings.home is Home.EMBEDDED
    assert settings.embedded.images_dir == Path("data/images")
    assert settings.embedded.catalog_path == Path("data/catalog.sqlite")
    assert settings.embedded.index_dir == Path("data/index")


def test_aws_home_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "FASHION_SEARCH_HOME": "aws",
        "FASHION_SEARCH_AWS__BUCKET": "imgs",
        "FASHION_SEARCH_AWS__TABLE": "catalog",
        "FASHION_SEARCH_AWS__PINECONE_INDEX": "fashion",
        "FASHION_SEARCH_AWS__PINECONE_SECRET_NAME": "prod/pinecone",
        "FASHION_SEARCH_AWS__INGEST_PREFIX": "incoming/",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aws = Settings().require_aws()
    assert (aws.bucket, aws.table, aws.pinecone_index) == ("imgs", "catalog", "fashion")
    assert (aws.pinecone_secret_name, aws.ingest_prefix) == ("prod/pinecone", "incoming/")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FASHION_SEARCH_EMBEDDED__DATA_DIR=/srv/fashion\n")
    assert Settings().embedded.data_dir == Path("/srv/fashion")


@pytest.mark.parametrize(
    ("aws", "missing"),
    [
        ({}, ["BUCKET", "TABLE", "PINECONE_INDEX", "PINECONE_SECRET_NAME"]),
        ({"bucket": "b", "table": "t", "pinecone_index": "i"}, ["PINECONE_SECRET_NAME"]),
        ({"table": "t", "pinecone_index": "i", "pinecone_api_key": "k"}, ["BUCKET"]),
    ],
)
def test_require_aws_names_every_missing_setting(aws: dict[str, str], missing: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.model_validate({"home": "aws", "aws": aws}).require_aws()
    named = caught.value.message.split(": ", 1)[1].split(", ")
    assert named == [f"FASHION_SEARCH_AWS__{m}" for m in missing]
    assert caught.value.field == f"FASHION_SEARCH_AWS__{missing[0]}"


def test_an_unknown_home_is_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHION_SEARCH_HOME", "gcp")
    with pytest.raises(ValidationError, match="home"):
        Settings()


def test_the_pinecone_key_is_never_printed() -> None:
    settings = Settings.model_validate({"aws": {"pinecone_api_key": "pc-secret-123"}})
    assert "pc-secret-123" not in repr(settings) and "pc-secret-123" not in str(settings.aws)
    assert settings.aws.pinecone_api_key is not None
    assert settings.aws.pinecone_api_key.get_secret_value() == "pc-secret-123"
