"""infra/streamlit/ecs-service.yaml serves the UI only over HTTPS and only to signed-in users,
and the API key stays server side (the task's environment, from Secrets Manager)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.build_lambda import ROOT, load_template

UI_TEMPLATE = ROOT / "infra" / "streamlit" / "ecs-service.yaml"


@pytest.fixture(scope="module")
def ui() -> dict[str, Any]:
    return load_template(UI_TEMPLATE)


def of_type(tpl: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == kind}


def test_nothing_is_forwarded_without_https_and_a_cognito_sign_in(ui: dict[str, Any]) -> None:
    listeners = of_type(ui, "AWS::ElasticLoadBalancingV2::Listener")
    assert listeners
    for name, listener in listeners.items():
        props = listener["Properties"]
        actions = sorted(props["DefaultActions"], key=lambda a: a.get("Order", 0))
        if props["Protocol"] == "HTTP":
            # Plain HTTP only redirects to HTTPS.
            assert [a["Type"] for a in actions] == ["redirect"], name
            assert actions[0]["RedirectConfig"]["Protocol"] == "HTTPS"
            continue
        assert props["Protocol"] == "HTTPS" and props["Port"] == 443
        assert "TLS13" in props["SslPolicy"]
        assert [a["Type"] for a in actions] == ["authenticate-cognito", "forward"], name
        auth = actions[0]["AuthenticateCognitoConfig"]
        assert auth["OnUnauthenticatedRequest"] == "authenticate"
        assert auth["UserPoolClientId"] == {"Ref": "UserPoolClient"}
    # No listener rule elsewhere could forward around the sign-in.
    assert not of_type(ui, "AWS::ElasticLoadBalancingV2::ListenerRule")


def test_only_invited_users_and_the_callback_is_the_ui_host(ui: dict[str, Any]) -> None:
    (pool,) = of_type(ui, "AWS::Cognito::UserPool").values()
    assert pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    (client,) = of_type(ui, "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    assert props["GenerateSecret"] is True and props["AllowedOAuthFlows"] == ["code"]
    # The ALB's authenticate action returns to this fixed path on the host users open.
    assert props["CallbackURLs"] == [{"Fn::Sub": "https://${DomainName}/oauth2/idpresponse"}]
    # The certificate is required: no parameter lets the stack fall back to plain HTTP.
    cert = ui["Parameters"]["CertificateArn"]
    assert "Default" not in cert and re.match(cert["AllowedPattern"], "arn:aws:acm:x")
    assert "Conditions" not in ui or "UseHttps" not in ui["Conditions"]


def test_the_api_key_is_a_task_secret_never_plain_environment(ui: dict[str, Any]) -> None:
    (task,) = of_type(ui, "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    assert secrets == {"FASHION_SEARCH_UI_API_KEY": {"Ref": "ApiKeySecretArn"}}
    assert all("KEY" not in e["Name"] for e in container["Environment"])
    # Tasks take traffic from the load balancer only.
    (task_sg,) = [
        sg
        for sg in of_type(ui, "AWS::EC2::SecurityGroup").values()
        if "tasks" in sg["Properties"]["GroupDescription"]
    ]
    (rule,) = task_sg["Properties"]["SecurityGroupIngress"]
    assert rule["SourceSecurityGroupId"] == {"Ref": "AlbSecurityGroup"} and "CidrIp" not in rule
