"""The demo's orchestration pieces: settings, reuse of a generated catalog, child processes."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from fashion_search.demo import run as demo
from fashion_search.demo.services import LOOPBACK, Service, free_port
from fashion_search.errors import BundleError, ConfigError
from fashion_search.settings import Home, Settings


def test_demo_settings_point_at_the_demo_and_disable_auth(tmp_path: Path) -> None:
    base = Settings(_env_file=None)
    s = demo.demo_settings(base, data_dir=tmp_path / "d", bundle=tmp_path / "m")
    assert s.home is Home.EMBEDDED
    assert s.embedded.data_dir == (tmp_path / "d").resolve()
    assert s.model.bundle == (tmp_path / "m").resolve()
    assert s.api.auth_disabled and s.api.host == "127.0.0.1"
    assert not base.api.auth_disabled  # the caller's settings are not changed


def test_children_read_the_demo_settings_from_their_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = demo.demo_settings(Settings(_env_file=None), data_dir=tmp_path, bundle=tmp_path / "m")
    env = demo.child_env(s, {"PATH": "/bin"}, api_url="http://127.0.0.1:8123")
    assert env["PATH"] == "/bin"
    assert env["FASHION_SEARCH_UI_API_URL"] == "http://127.0.0.1:8123"
    for key, value in env.items():
        if key.startswith("FASHION_SEARCH_"):
            monkeypatch.setenv(key, value)
    child = Settings(_env_file=None)  # what the API process will see
    assert child.embedded.data_dir == s.embedded.data_dir
    assert child.model.bundle == s.model.bundle
    assert child.api.auth_disabled and child.api.port == 8123
    assert child.api.public_url == "http://127.0.0.1:8123"


def test_the_catalog_is_generated_once_per_parameters(tmp_path: Path) -> None:
    paths = demo.DemoPaths(tmp_path)
    assert demo.ensure_catalog(paths, products=12)
    mtime = paths.styles_csv.stat().st_mtime_ns
    assert not demo.ensure_catalog(paths, products=12)
    assert paths.styles_csv.stat().st_mtime_ns == mtime
    assert demo.ensure_catalog(paths, products=14)  # other parameters: regenerated
    assert len(paths.styles_csv.read_text().splitlines()) == 15


def test_an_own_catalog_replaces_the_generated_one(tmp_path: Path) -> None:
    paths = demo.DemoPaths(tmp_path / "data", own_catalog=tmp_path / "kaggle" / "styles.csv")
    assert paths.source_images == tmp_path / "kaggle" / "images"
    assert paths.drop_folder == tmp_path / "data" / "images"


def test_a_missing_bundle_says_how_to_get_one(tmp_path: Path) -> None:
    s = demo.demo_settings(Settings(_env_file=None), data_dir=tmp_path, bundle=tmp_path / "none")
    with pytest.raises(BundleError, match="model train"):
        demo.check_bundle(s)


def test_free_port_skips_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert free_port(taken) != taken


def test_free_port_takes_back_a_port_left_in_time_wait() -> None:
    """A demo stopped a moment ago leaves its port in TIME_WAIT (the server closed first). The
    servers bind with SO_REUSEADDR (uvicorn, tornado), so the port is free for them: a restart
    keeps the same URL instead of moving to the next port."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's listener
        server.bind((LOOPBACK, 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection((LOOPBACK, port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end of the connection waits
        client.close()
    with socket.socket() as probe:  # what a bind without SO_REUSEADDR sees
        with pytest.raises(OSError):
            probe.bind((LOOPBACK, port))
    assert free_port(port) == port


def _http_server(tmp_path: Path) -> Service:
    port = free_port(18700)
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK]
    url = f"http://{LOOPBACK}:{port}"
    return Service("web", argv, url, f"{url}/", tmp_path / "logs" / "web.log")


def test_a_service_starts_answers_and_stops(tmp_path: Path) -> None:
    service = _http_server(tmp_path)
    service.start(env={}, cwd=tmp_path)
    try:
        service.wait_ready(timeout_s=30)
        assert service.alive()
    finally:
        service.stop()
    assert not service.alive()
    assert service.process is not None and service.process.returncode is not None


def test_a_service_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    service = Service(
        "broken",
        [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"],
        "http://127.0.0.1:1",
        "http://127.0.0.1:1/",
        tmp_path / "broken.log",
    )
    service.start(env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="boom: bad config"):
        service.wait_ready(timeout_s=30)
