"""Child processes of the demo (the API and the Streamlit app): start, wait until they answer,
stop cleanly. Loopback only."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fashion_search.errors import ConfigError

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


def free_port(preferred: int, *, host: str = LOOPBACK, tries: int = 50) -> int:
    """``preferred`` if nothing listens there, else the next free port above it.

    The probe binds with SO_REUSEADDR, as uvicorn and Streamlit's tornado do: a port whose last
    connections are in TIME_WAIT (the demo stopped a moment ago) is free for them, so a quick
    restart keeps its URLs. A port someone listens on still refuses the bind (Linux, macOS)."""
    for port in range(preferred, preferred + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise ConfigError(f"no free port in {preferred}..{preferred + tries - 1} on {host}")


@dataclass
class Service:
    name: str
    argv: list[str]
    url: str
    health_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, *, env: Mapping[str, str], cwd: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            # A new process group: Ctrl-C in the terminal reaches us, and we stop the child
            # ourselves, in order, instead of every process racing to exit.
            self.process = subprocess.Popen(
                self.argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, *, timeout_s: float) -> None:
        """Poll the health URL until it answers 200; a child that exits first is an error."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ConfigError(
                    f"{self.name} exited during start-up (code "
                    f"{self.process.returncode if self.process else '?'}); see {self.log_path}:\n"
                    + tail(self.log_path)
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise ConfigError(f"{self.name} did not answer at {self.health_url} in {timeout_s:.0f}s")

    def stop(self, *, timeout_s: float = 10.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0)):
            proc.send_signal(sig)
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop on %s", self.name, sig.name)
        proc.kill()
        proc.wait(timeout=5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def api_service(*, port: int, log_dir: Path) -> Service:
    base = f"http://{LOOPBACK}:{port}"
    argv = [
        sys.executable,
        "-m",
        "fashion_search.cli",
        "serve",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
    ]
    return Service("API", argv, base, f"{base}/health", log_dir / "api.log")


def ui_service(*, app: Path, port: int, log_dir: Path) -> Service:
    base = f"http://{LOOPBACK}:{port}"
    argv = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", LOOPBACK, "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    return Service("UI", argv, base, f"{base}/_stcore/health", log_dir / "ui.log")


def stop_all(services: Sequence[Service]) -> None:
    for service in reversed(services):
        service.stop()
