"""The demo, step by step: catalog -> model check -> load -> ingest (the folder watcher's catch-up)
-> API + UI child processes -> watch the drop folder until stopped.

Each step reuses what an earlier run left: the generated catalog has a marker, the loader skips
unchanged images, ingest skips images already indexed by the same model, so a second run only
checks and starts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fashion_search.demo.catalog import DEFAULT_SEED, generate_catalog
from fashion_search.demo.services import Service, api_service, free_port, stop_all, ui_service
from fashion_search.errors import BundleError
from fashion_search.ingest.kaggle.loader import CatalogLoader, LoadSummary
from fashion_search.ingest.outcome import IngestOutcome, IngestReport
from fashion_search.ingest.pipeline import Ingestor
from fashion_search.ingest.triggers.oneshot import catch_up as oneshot_catch_up
from fashion_search.ingest.triggers.watcher import FolderWatcher
from fashion_search.settings import ENV_PREFIX, Home, Settings

log = logging.getLogger(__name__)
Progress = Callable[[int], None]
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class DemoPaths:
    data_dir: Path
    # A user's own styles.csv (images/ beside it) instead of the generated catalog.
    own_catalog: Path | None = None

    @property
    def catalog_dir(self) -> Path:
        return self.own_catalog.parent if self.own_catalog else self.data_dir / "catalog"

    @property
    def styles_csv(self) -> Path:
        return self.own_catalog or self.catalog_dir / "styles.csv"

    @property
    def source_images(self) -> Path:
        return self.catalog_dir / "images"

    @property
    def drop_folder(self) -> Path:
        """The embedded images folder: the blob store and the watched folder at once."""
        return self.data_dir / "images"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


def demo_settings(base: Settings, *, data_dir: Path, bundle: Path | None = None) -> Settings:
    """``base`` pointed at the demo's folder and bundle, embedded home, auth off (local only)."""
    return base.model_copy(
        update={
            "home": Home.EMBEDDED,
            "embedded": base.embedded.model_copy(update={"data_dir": data_dir.resolve()}),
            "model": base.model.model_copy(
                update={"bundle": (bundle or base.model.bundle).resolve()}
            ),
            "api": base.api.model_copy(update={"auth_disabled": True, "host": "127.0.0.1"}),
        }
    )


def ensure_catalog(paths: DemoPaths, *, products: int, seed: int = DEFAULT_SEED) -> bool:
    """Generate the catalog unless one with the same parameters is there; True if generated."""
    marker = paths.catalog_dir / ".generated.json"
    wanted = {"products": products, "seed": seed, "generator": GENERATOR_VERSION}
    try:
        if json.loads(marker.read_text()) == wanted and paths.styles_csv.is_file():
            return False
    except (OSError, ValueError):
        pass
    generate_catalog(paths.catalog_dir, products=products, seed=seed)
    marker.write_text(json.dumps(wanted) + "\n")
    return True


def check_bundle(settings: Settings) -> Path:
    bundle = settings.model.bundle
    if not (bundle / "config.json").is_file():
        raise BundleError(
            f"no model bundle at {bundle}. Run from the repository root (models/demo is "
            f"committed), set {ENV_PREFIX}MODEL__BUNDLE, or make one with "
            "`fashion-search model train` / `fashion-search model pull`",
            field=f"{ENV_PREFIX}MODEL__BUNDLE",
        )
    return bundle


def load_catalog(
    ingestor: Ingestor, paths: DemoPaths, *, on_progress: Progress | None = None
) -> LoadSummary:
    """The loader: tags into the catalog, images into the drop folder."""
    return CatalogLoader(ingestor.stores, on_progress=on_progress).load(
        paths.styles_csv, paths.source_images
    )


def catch_up(
    ingestor: Ingestor, paths: DemoPaths, *, on_progress: Progress | None = None
) -> IngestReport:
    """The folder watcher's catch-up over the drop folder: indexes what is not indexed yet and
    removes what was deleted from it while the demo was not running."""
    return oneshot_catch_up(ingestor, paths.drop_folder, on_progress=on_progress)


def load_and_ingest(
    ingestor: Ingestor,
    paths: DemoPaths,
    *,
    on_load: Progress | None = None,
    on_ingest: Progress | None = None,
) -> tuple[LoadSummary, IngestReport]:
    """Loader (tags + images into the drop folder), then the watcher's catch-up over it."""
    loaded = load_catalog(ingestor, paths, on_progress=on_load)
    return loaded, catch_up(ingestor, paths, on_progress=on_ingest)


def child_env(settings: Settings, base_env: Mapping[str, str], *, api_url: str) -> dict[str, str]:
    """The environment the API and UI processes get: the caller's plus the demo's settings."""
    env = dict(base_env)
    env.update(
        {
            f"{ENV_PREFIX}HOME": "embedded",
            f"{ENV_PREFIX}EMBEDDED__DATA_DIR": str(settings.embedded.data_dir),
            f"{ENV_PREFIX}MODEL__BUNDLE": str(settings.model.bundle),
            f"{ENV_PREFIX}API__AUTH_DISABLED": "true",
            f"{ENV_PREFIX}API__HOST": "127.0.0.1",
            f"{ENV_PREFIX}API__PORT": api_url.rsplit(":", 1)[1],
            f"{ENV_PREFIX}API__PUBLIC_URL": api_url,
            f"{ENV_PREFIX}UI_API_URL": api_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class Running:
    services: list[Service]
    watcher_thread: threading.Thread
    stop_event: threading.Event

    def stop(self) -> None:
        self.stop_event.set()
        stop_all(self.services)
        if self.watcher_thread.is_alive():
            self.watcher_thread.join(timeout=10)


def start(
    ingestor: Ingestor,
    settings: Settings,
    paths: DemoPaths,
    *,
    base_env: Mapping[str, str],
    ui_app: Path | None,
    api_port: int = 8000,
    ui_port: int = 8501,
    on_batch: Callable[[list[IngestOutcome]], None] | None = None,
    ready_timeout_s: float = 120.0,
) -> Running:
    """Start the API (and the UI when ``ui_app`` is given) and the drop-folder watcher."""
    api = api_service(port=free_port(api_port), log_dir=paths.log_dir)
    env = child_env(settings, base_env, api_url=api.url)
    services = [api]
    if ui_app is not None:
        services.append(ui_service(app=ui_app, port=free_port(ui_port), log_dir=paths.log_dir))
    stop_event = threading.Event()
    watcher = FolderWatcher(ingestor, paths.drop_folder)
    thread = threading.Thread(
        target=watcher.run, args=(stop_event,), kwargs={"on_batch": on_batch},
        name="demo-watcher", daemon=True,
    )  # fmt: skip
    running = Running(services, thread, stop_event)
    try:
        for service in services:
            service.start(env=env, cwd=Path.cwd())
        for service in services:
            service.wait_ready(timeout_s=ready_timeout_s)
        thread.start()
    except BaseException:
        running.stop()
        raise
    return running
