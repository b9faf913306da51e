"""checkov passes on template.yaml, and every skip in the template is one checkov actually made
(no decorative skips).

checkov pins an old boto3/botocore, so it lives in its own environment: `pipx install checkov`
(or `python -m venv .cache/tools/checkov && .cache/tools/checkov/bin/pip install checkov`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.build_lambda import ROOT, TEMPLATE, load_template


def find_checkov() -> str | None:
    local = ROOT / ".cache" / "tools" / "checkov" / "bin" / "checkov"
    return shutil.which("checkov") or (str(local) if local.is_file() else None)


def test_checkov_passes_and_every_skip_is_used() -> None:
    checkov = find_checkov()
    if checkov is None:
        pytest.skip("checkov is not installed (pipx install checkov); CI installs it")
    proc = subprocess.run(
        [checkov, "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download"]
        + ["--output", "json"],
        capture_output=True,
        text=True,
        cwd=Path(TEMPLATE).parent,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == [], failed
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["summary"]["passed"] >= 15

    made = {(c["check_id"], c["resource"].rsplit(".", 1)[-1]) for c in results["skipped_checks"]}
    declared = {
        (skip["id"], name)
        for name, res in load_template(TEMPLATE)["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }
    assert declared == made, f"skips checkov never needed: {sorted(declared - made)}"
