"""Fixtures of the browser tests: the real API and the Streamlit app as separate servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.live_api import LiveApi, free_port, wait_http_ok

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "streamlit_app" / "app.py"
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def streamlit_url(live_api_server: LiveApi) -> Iterator[str]:
    """``streamlit run streamlit_app/app.py`` on a free loopback port, pointed at the API."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHION_SEARCH_UI_")}
    env |= {
        "FASHION_SEARCH_UI_API_URL": live_api_server.url,
        "FASHION_SEARCH_UI_API_KEY": live_api_server.key,
    }
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with (ARTIFACTS / "streamlit.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/_stcore/health", timeout_s=90)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
