"""template.yaml as CloudFormation sees it after the SAM transform.

SAM adds resources and permissions of its own when it expands ``AWS::Serverless::*`` (an
execution role per function, managed policies for an SQS trigger, CodeDeploy's role, aliases),
so IAM is checked on the translated template, not on the inline statements alone. The
translation is ``samtranslator``'s, the library ``sam validate``/``sam deploy`` run; managed
policy names resolve from a fixed map instead of IAM (no network).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

from infra.cfn import load_template

ACCOUNT = "123456789012"
REGION = "us-east-1"

# The AWS managed policies SAM attaches by name, with their ARNs (what IAM would return).
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in [
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaSQSQueueExecutionRole"),
        ("service-role/", "AWSCodeDeployRoleForLambda"),
        ("", "AWSXrayWriteOnlyAccess"),
        ("", "AWSXRayDaemonWriteAccess"),
    ]
}


def translate(
    template: dict[str, Any] | None = None, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """The expanded (plain CloudFormation) template, with ``parameters`` over the defaults."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(template if template is not None else load_template())
    for res in sam["Resources"].values():
        props = res.get("Properties", {})
        # Local paths are uploaded by `sam package`; the translator wants the S3 form.
        if res["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://artifacts/code.zip"
        if res["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://artifacts/layer.zip"
    values = {k: v.get("Default") for k, v in sam.get("Parameters", {}).items()}
    values.update(parameters or {})
    translator = Translator(
        MANAGED_POLICIES, Parser(), boto_session=boto3.Session(region_name=REGION)
    )
    expanded: dict[str, Any] = translator.translate(sam, parameter_values=values)
    return expanded


@functools.cache
def translated_default() -> dict[str, Any]:
    return translate()


def roles(expanded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in expanded["Resources"].items() if v["Type"] == "AWS::IAM::Role"}


def role_of(expanded: dict[str, Any], function_id: str) -> str:
    """The logical id of the role a (translated) function runs with."""
    role = expanded["Resources"][function_id]["Properties"]["Role"]
    assert "Fn::GetAtt" in role, f"{function_id} runs with a role outside the stack: {role}"
    return str(role["Fn::GetAtt"][0])


def role_statements(expanded: dict[str, Any], role_id: str) -> Iterator[dict[str, Any]]:
    for policy in expanded["Resources"][role_id]["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def function_statements(expanded: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    """Every inline statement the function's execution role holds."""
    return list(role_statements(expanded, role_of(expanded, function_id)))
