"""Long-running commands (demo, watch) stop the same clean way on Ctrl-C, kill and hang-up."""

from __future__ import annotations

import signal


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, also when the shell
    started us with SIGINT ignored (a background job) or a service manager stops us (SIGTERM)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
