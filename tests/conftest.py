"""Shared fixtures live in ``tests/fixtures/*.py``; every module there is a pytest plugin."""

from __future__ import annotations

import pkgutil
from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures"

pytest_plugins = [
    f"tests.fixtures.{info.name}"
    for info in pkgutil.iter_modules([str(_FIXTURES)])
    if not info.name.startswith("_")
]
