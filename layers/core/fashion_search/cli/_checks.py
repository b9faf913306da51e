"""Checks a command makes before it creates anything."""

from __future__ import annotations

from fashion_search.errors import ConfigError
from fashion_search.settings import ENV_PREFIX, Home, Settings


def require_home(settings: Settings) -> None:
    """Commands that work on an existing catalog (reconcile, reindex) refuse an embedded data
    folder that holds none, instead of creating an empty home there and reporting nothing."""
    if settings.home is not Home.EMBEDDED or settings.embedded.catalog_path.is_file():
        return
    raise ConfigError(
        f"no embedded home in {settings.embedded.data_dir.resolve()} (no catalog.sqlite): run "
        f"from the folder that holds it, set {ENV_PREFIX}EMBEDDED__DATA_DIR, or make one with "
        "`fashion-search load` or `fashion-search ingest`",
        field=f"{ENV_PREFIX}EMBEDDED__DATA_DIR",
    )
