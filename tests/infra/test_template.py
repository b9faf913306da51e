"""template.yaml is wired the way the system needs: what S3 sends reaches the function that
ingests it, failures end in a DLQ, nothing can write where ingest is triggered, the API cannot
Scan, and every name the template hands the code is a real setting and a real handler."""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fashion_search.settings import ENV_PREFIX, Settings

from infra.build_lambda import ROOT, TEMPLATE, load_template, read_specs
from tests.infra import sam

# Stand-ins for pseudo parameters when a !Sub string is turned into a concrete ARN/name.
PSEUDO = {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "AWS::Partition": "aws"}
S3_WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:RestoreObject")
DYNAMODB_WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def resolve(value: Any, template: dict[str, Any]) -> Any:
    """A concrete value for ``!Sub``/``!Ref`` of parameters (their defaults) and pseudo
    parameters; other references come back as ``<LogicalId>`` placeholders."""
    params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}

    def lookup(name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        return params.get(name, f"<{name}>")

    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        assert isinstance(text, str), "only the one-argument !Sub form is used"
        return re.sub(r"\$\{([^}]+)\}", lambda m: lookup(m.group(1)), text)
    if isinstance(value, dict) and "Ref" in value:
        return lookup(value["Ref"])
    return value


def function_statements(name: str) -> list[dict[str, Any]]:
    """The statements of the function's execution role in the SAM-translated template (which
    must be a role of this stack: SAM's generated roles would add managed policies)."""
    return sam.function_statements(sam.translated_default(), name)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def bucket_name(template: dict[str, Any]) -> str:
    (bucket,) = resources_of(template, "AWS::S3::Bucket").values()
    name = resolve(bucket["Properties"]["BucketName"], template)
    assert isinstance(name, str) and "<" not in name
    return name


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    proc = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_s3_notifications_reach_the_queue_the_ingest_function_reads(
    template: dict[str, Any],
) -> None:
    (bucket,) = resources_of(template, "AWS::S3::Bucket").values()
    configs = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    events = {c["Event"] for c in configs}
    assert {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"} <= events
    queues = {c["Queue"]["Fn::GetAtt"][0] for c in configs}
    assert len(queues) == 1
    (queue_id,) = queues
    for c in configs:
        (rule,) = c["Filter"]["S3Key"]["Rules"]
        assert rule == {"Name": "prefix", "Value": {"Ref": "IngestPrefix"}}

    ingest = template["Resources"]["IngestFunction"]
    sqs_events = [e for e in ingest["Properties"]["Events"].values() if e["Type"] == "SQS"]
    assert [e["Properties"]["Queue"] for e in sqs_events] == [{"Fn::GetAtt": [queue_id, "Arn"]}]
    assert sqs_events[0]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The code filters on the same prefix the notification uses.
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["FASHION_SEARCH_AWS__INGEST_PREFIX"] == {"Ref": "IngestPrefix"}

    # S3 may send to the queue (only from this bucket), and the policy exists before the bucket.
    policies = resources_of(template, "AWS::SQS::QueuePolicy").values()
    (policy,) = [p for p in policies if {"Ref": queue_id} in p["Properties"]["Queues"]]
    (stmt,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"}
    assert stmt["Action"] == "sqs:SendMessage"
    source = resolve(stmt["Condition"]["ArnEquals"]["aws:SourceArn"], template)
    assert source == f"arn:aws:s3:::{bucket_name(template)}"
    assert "IngestQueuePolicy" in as_list(bucket.get("DependsOn", []))


def test_dead_letter_queue_and_visibility_timeout(template: dict[str, Any]) -> None:
    queue = template["Resources"]["IngestQueue"]["Properties"]
    redrive = queue["RedrivePolicy"]
    dlq_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert template["Resources"][dlq_id]["Type"] == "AWS::SQS::Queue"
    assert 1 <= redrive["maxReceiveCount"] <= 10
    ingest = template["Resources"]["IngestFunction"]["Properties"]
    (event,) = ingest["Events"].values()
    window = event["Properties"].get("MaximumBatchingWindowInSeconds", 0)
    # AWS: visibility >= 6 x function timeout (+ the batching window).
    assert queue["VisibilityTimeout"] >= 6 * ingest["Timeout"] + window
    # Alarms watch the DLQ and the functions' errors.
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    watched = {str(d["Value"]) for a in alarms for d in a["Properties"]["Dimensions"]}
    assert str({"Fn::GetAtt": [dlq_id, "QueueName"]}) in watched
    assert {str({"Ref": "IngestFunction"}), str({"Ref": "ApiFunction"})} <= watched


def test_no_function_can_write_to_the_trigger_prefix(template: dict[str, Any]) -> None:
    prefix = resolve({"Ref": "IngestPrefix"}, template)
    trigger_object = f"arn:aws:s3:::{bucket_name(template)}/{prefix}some/new image.jpg"
    functions = resources_of(template, "AWS::Serverless::Function")
    assert functions
    for name in functions:
        for stmt in function_statements(name):
            if stmt["Effect"] != "Allow":
                continue
            actions = as_list(stmt["Action"])
            writes = [
                a for a in actions if any(fnmatch.fnmatchcase(w, a) for w in S3_WRITE_ACTIONS)
            ]
            if not writes:
                continue
            for res in as_list(stmt["Resource"]):
                pattern = resolve(res, template)
                assert not fnmatch.fnmatchcase(trigger_object, pattern), (name, writes, pattern)


def test_no_wildcard_allow_anywhere(template: dict[str, Any]) -> None:
    statements: list[dict[str, Any]] = []
    for name in resources_of(template, "AWS::Serverless::Function"):
        statements += function_statements(name)
    for kind in ("AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy"):
        for res in resources_of(template, kind).values():
            statements += res["Properties"]["PolicyDocument"]["Statement"]
    assert statements
    for stmt in statements:
        assert "NotAction" not in stmt
        if stmt["Effect"] == "Deny":
            continue  # a wildcard in a Deny only takes more away
        for action in as_list(stmt["Action"]):
            assert "*" not in action, stmt


def test_api_function_reads_only_and_never_scans(template: dict[str, Any]) -> None:
    api = template["Resources"]["ApiFunction"]
    actions = [a for s in function_statements("ApiFunction") for a in as_list(s["Action"])]
    assert "dynamodb:Query" in actions and "dynamodb:GetItem" in actions
    assert "dynamodb:Scan" not in actions
    assert not set(actions) & {
        *DYNAMODB_WRITE_ACTIONS,
        *S3_WRITE_ACTIONS,
        "dynamodb:BatchWriteItem",
    }
    # Throttling at the stage, reserved concurrency on the function.
    http_api = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(http_api)
    assert "ReservedConcurrentExecutions" in api["Properties"]
    assert "ReservedConcurrentExecutions" in template["Resources"]["IngestFunction"]["Properties"]


def test_secrets_are_passed_by_name_only(template: dict[str, Any]) -> None:
    for fn in [
        template["Globals"]["Function"],
        *resources_of(template, "AWS::Serverless::Function").values(),
    ]:
        props = fn.get("Properties", fn)
        for name in props.get("Environment", {}).get("Variables", {}):
            assert not re.search(r"API_KEY($|S$)|PASSWORD|TOKEN", name), name
    for stmt in function_statements("IngestFunction"):
        if "secretsmanager:GetSecretValue" in as_list(stmt["Action"]):
            for res in as_list(stmt["Resource"]):
                assert resolve(res, template).endswith(
                    f":secret:{resolve({'Ref': 'PineconeSecretName'}, template)}-??????"
                )


def test_environment_names_real_settings(template: dict[str, Any]) -> None:
    """Every FASHION_SEARCH_* variable the template sets is a field of Settings (a typo would
    be silently ignored by pydantic-settings)."""
    blocks = [template["Globals"]["Function"]["Environment"]["Variables"]]
    blocks += [
        fn["Properties"].get("Environment", {}).get("Variables", {})
        for fn in resources_of(template, "AWS::Serverless::Function").values()
    ]
    seen = 0
    for block in blocks:
        for name in block:
            if not name.startswith(ENV_PREFIX):
                continue
            node: Any = Settings
            for part in name.removeprefix(ENV_PREFIX).lower().split("__"):
                assert part in node.model_fields, f"{name}: no setting {part!r}"
                node = node.model_fields[part].annotation
            seen += 1
    assert seen >= 8
    assert (
        template["Globals"]["Function"]["Environment"]["Variables"]["FASHION_SEARCH_HOME"] == "aws"
    )


def test_handlers_named_in_the_template_exist(template: dict[str, Any]) -> None:
    _, functions = read_specs(template)
    assert {f.logical_id for f in functions} == {"IngestFunction", "ApiFunction"}
    for fn in functions:
        module, _, attr = fn.handler.rpartition(".")
        source = fn.code_uri / f"{module.replace('.', '/')}.py"
        assert source.is_file(), f"{fn.logical_id}: {source} does not exist"
        tree = ast.parse(source.read_text(encoding="utf-8"))
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
        assert attr in names, f"{source} defines no module-level {attr!r}"
        assert {"CoreLayer", "ModelLayer", "CommonLayer"} <= set(fn.layers)


def test_catalog_table_matches_the_adapter(template: dict[str, Any], dynamodb_client: Any) -> None:
    """The deployed table has the keys and indexes the DynamoDB catalog adapter creates."""
    from fashion_search.stores.aws.dynamodb_catalog import create_catalog_table

    create_catalog_table(dynamodb_client, "probe")
    made = dynamodb_client.describe_table(TableName="probe")["Table"]
    props = template["Resources"]["CatalogTable"]["Properties"]

    def key_set(rows: list[dict[str, str]]) -> set[tuple[str, str]]:
        return {tuple(sorted(r.items())) for r in rows}  # type: ignore[misc]

    assert key_set(props["AttributeDefinitions"]) == key_set(made["AttributeDefinitions"])
    assert key_set(props["KeySchema"]) == key_set(made["KeySchema"])
    ours = {g["IndexName"]: g for g in props["GlobalSecondaryIndexes"]}
    theirs = {g["IndexName"]: g for g in made["GlobalSecondaryIndexes"]}
    assert set(ours) == set(theirs)
    for name, index in ours.items():
        assert key_set(index["KeySchema"]) == key_set(theirs[name]["KeySchema"])
        assert index["Projection"]["ProjectionType"] == theirs[name]["Projection"]["ProjectionType"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    for table in resources_of(template, "AWS::DynamoDB::Table").values():
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }


def test_every_checkov_skip_gives_its_reason(template: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, res in template["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip.get("comment", "").split()) >= 8, f"{name} {skip['id']}: say why"


def test_layers_are_built_by_sam_build_methods(template: dict[str, Any]) -> None:
    layers, _ = read_specs(template)
    assert layers["CoreLayer"].content_uri == ROOT / "layers" / "core"
    for layer in layers.values():
        # makefile for every layer: SAM's python3.12 builder copies the whole ContentUri (the
        # core layer would carry the tooling) and resolves pins transitively (deps layers).
        assert layer.build_method == "makefile"
        makefile = (layer.content_uri / "Makefile").read_text(encoding="utf-8")
        assert f"build-{layer.logical_id}:" in makefile


def _references(node: Any) -> Iterator[str]:
    """Every logical id a (nested) template value points at: Ref, GetAtt, ${X} in Sub."""
    if isinstance(node, dict):
        if "Ref" in node:
            yield str(node["Ref"])
        if "Fn::GetAtt" in node:
            yield str(node["Fn::GetAtt"][0])
        if "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
            yield from (m.split(".")[0] for m in re.findall(r"\$\{([^}]+)\}", node["Fn::Sub"]))
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_functions_name_the_bucket_without_referencing_it(template: dict[str, Any]) -> None:
    """The bucket's notification depends on the queue the functions read, so a Ref/GetAtt to
    the bucket from a function would be a circular dependency (cfn-lint does not see it)."""
    (bucket_id,) = resources_of(template, "AWS::S3::Bucket")
    assert bucket_id not in set(_references(template["Globals"]))
    for name, fn in resources_of(template, "AWS::Serverless::Function").items():
        assert bucket_id not in set(_references(fn)), name
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert resolve(env["FASHION_SEARCH_AWS__BUCKET"], template) == bucket_name(template)


def test_runtime_tracing_powertools_and_outputs(template: dict[str, Any]) -> None:
    globals_fn = template["Globals"]["Function"]
    assert globals_fn["Runtime"] == "python3.12"
    assert globals_fn["Tracing"] == "Active"
    # The bundle is copied to /tmp at cold start: fp32 ViT-B/32 is ~600 MB.
    assert globals_fn["EphemeralStorage"]["Size"] >= 1024
    assert globals_fn["MemorySize"] >= 2048
    assert "POWERTOOLS_METRICS_NAMESPACE" in globals_fn["Environment"]["Variables"]
    services = set()
    for fn in resources_of(template, "AWS::Serverless::Function").values():
        services.add(fn["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"])
    assert len(services) == 2
    assert {"ApiUrl", "BucketName", "CatalogTableName"} <= set(template["Outputs"])


def samconfig_overrides(config: dict[str, Any], env: str, command: str) -> dict[str, str]:
    text = config[env][command]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in text.split())


def test_samconfig_overrides_are_valid_parameters(template: dict[str, Any]) -> None:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    checked = 0
    for env, commands in config.items():
        if not isinstance(commands, dict):
            continue  # version = 0.1
        for command, section in commands.items():
            if "parameter_overrides" not in section.get("parameters", {}):
                continue
            if command == "deploy":
                assert "CAPABILITY_IAM" in section["parameters"]["capabilities"]
            for name, value in samconfig_overrides(config, env, command).items():
                spec = template["Parameters"][name]  # KeyError: a parameter that is gone
                if "AllowedPattern" in spec:
                    assert re.fullmatch(spec["AllowedPattern"], value), (env, name, value)
                if "AllowedValues" in spec:
                    assert value in [str(v) for v in spec["AllowedValues"]], (env, name, value)
                checked += 1
    assert checked >= 20


def test_dev_and_prod_share_no_stack_data_secret_or_index() -> None:
    """A dev deploy must not be able to write prod's bucket, catalog, secrets or index."""
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    dev, prod = (samconfig_overrides(config, env, "deploy") for env in ("dev", "prod"))
    assert (
        config["dev"]["global"]["parameters"]["stack_name"]
        != (config["prod"]["global"]["parameters"]["stack_name"])
    )
    names = ("BucketNamePrefix", "PineconeIndexName", "PineconeSecretName", "ApiKeySecretName")
    for name in names:
        assert dev[name] != prod[name], name
    # The deploy prefix for artifacts differs too, and prod releases are canaries.
    assert (
        config["dev"]["deploy"]["parameters"]["s3_prefix"]
        != (config["prod"]["deploy"]["parameters"]["s3_prefix"])
    )
    assert prod["DeploymentType"] != "AllAtOnce"
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    # A sync (dev only) targets the dev stack's names.
    sync = samconfig_overrides(config, "dev", "sync")
    assert all(sync[name] == dev[name] for name in names)
