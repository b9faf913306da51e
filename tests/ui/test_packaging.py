"""The UI ships on its own: it imports only what its requirements.txt installs, its upload cap
is the API's, and its deployment assets (CloudFormation, deploy script) are valid."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fashion_search.settings import Settings

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "streamlit_app"
INFRA = REPO / "infra" / "streamlit"
# Import names of the distributions in streamlit_app/requirements.txt.
REQUIREMENT_IMPORTS = {"streamlit": "streamlit", "requests": "requests", "pillow": "PIL"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_ui_imports_only_stdlib_its_own_modules_and_its_requirements() -> None:
    reqs = {
        line.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for line in (UI / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert reqs == set(REQUIREMENT_IMPORTS)
    allowed = (
        set(sys.stdlib_module_names) | {"fsui", "__future__"} | set(REQUIREMENT_IMPORTS.values())
    )
    for path in sorted(UI.rglob("*.py")):
        extra = _imports(path) - allowed
        assert not extra, f"{path.relative_to(REPO)} imports {extra}: not in requirements.txt"
        assert "fashion_search" not in _imports(path)


def test_upload_cap_matches_the_api() -> None:
    sys.path.insert(0, str(UI))
    try:
        from fsui.config import DEFAULT_MAX_UPLOAD_MB, MiB
    finally:
        sys.path.remove(str(UI))
    api_cap = Settings().limits.max_upload_bytes
    assert DEFAULT_MAX_UPLOAD_MB * MiB == api_cap
    config = tomllib.loads((UI / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * MiB == api_cap
    assert config["client"]["showErrorDetails"] == "none"


def test_cloudformation_template_lints_clean() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed in this environment")
    done = subprocess.run(
        [cfn_lint, str(INFRA / "ecs-service.yaml")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_deploy_script_dry_run_builds_pushes_and_deploys_with_the_secret_arn() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "DRY_RUN": "1",
        "AWS_REGION": "eu-west-1",
        "VPC_ID": "vpc-1",
        "SUBNET_IDS": "subnet-a,subnet-b",
        "API_URL": "https://api.example.com/Prod",
        "API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:ui-key",
        "IMAGE_TAG": "t1",
        "AWS_ACCOUNT_ID": "111122223333",
        "CERTIFICATE_ARN": "arn:aws:acm:eu-west-1:1:certificate/c",
        "DOMAIN_NAME": "search.example.com",
        "COGNITO_DOMAIN_PREFIX": "fs-ui",
    }
    done = subprocess.run(
        ["bash", str(INFRA / "deploy.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    image = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/fashion-search-ui:t1"
    assert f"docker build --platform linux/amd64 -f {INFRA / 'Dockerfile'} -t {image}" in out
    assert f"docker push {image}" in out
    assert "aws cloudformation deploy" in out and f"ImageUri={image}" in out
    assert "ApiKeySecretArn=arn:aws:secretsmanager:eu-west-1:1:secret:ui-key" in out
    assert "DomainName=search.example.com" in out and "CognitoDomainPrefix=fs-ui" in out


def test_deploy_script_names_what_is_missing() -> None:
    env = {"PATH": os.environ["PATH"], "DRY_RUN": "1", "AWS_REGION": "eu-west-1"}
    done = subprocess.run(
        ["bash", str(INFRA / "deploy.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "VPC_ID" in done.stderr


def test_preview_aspect_ratio_matches_the_api() -> None:
    from fashion_search.images import MAX_ASPECT_RATIO

    sys.path.insert(0, str(UI))
    try:
        from fsui.components import MAX_PREVIEW_ASPECT_RATIO
    finally:
        sys.path.remove(str(UI))
    assert MAX_PREVIEW_ASPECT_RATIO == MAX_ASPECT_RATIO
