"""checkov passes on template.yaml and the UI's infra/streamlit/ecs-service.yaml, and
every skip in a template is one checkov actually made
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


UI_TEMPLATE = ROOT / "infra" / "streamlit" / "ecs-service.yaml"


@pytest.mark.parametrize(
    ("template", "least_passed"), [(TEMPLATE, 40), (UI_TEMPLATE, 20)], ids=["sam", "ui"]
)
def test_checkov_passes_and_every_skip_is_used(template: Path, least_passed: int) -> None:
    checkov = find_checkov()
    if checkov is None:
        pytest.skip("checkov is not installed (pipx install checkov); CI installs it")
    proc = subprocess.run(
        [checkov, "-f", str(template), "--framework", "cloudformation", "--skip-download"]
        + ["--output", "json"],
        capture_output=True,
        text=True,
        cwd=Path(template).parent,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == [], failed
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["summary"]["passed"] >= least_passed

    made = {(c["check_id"], c["resource"].rsplit(".", 1)[-1]) for c in results["skipped_checks"]}
    declared = {
        (skip["id"], name)
        for name, res in load_template(template)["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }
    assert declared == made, f"skips checkov never needed: {sorted(declared - made)}"
