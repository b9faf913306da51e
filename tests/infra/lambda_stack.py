"""A stand-in for the deployed stack, for running the *built* Lambda artifacts offline.

``MotoStack`` serves S3, SQS, DynamoDB and Secrets Manager from a moto server on loopback (the
handlers run in another process, so the in-process ``mock_aws`` cannot reach them), creates
what template.yaml would (bucket with its queue notification, catalog and idempotency tables,
secrets), and builds each function's environment from the template's own ``Environment``
blocks, so a wrong variable in the template fails here.

``run_handler`` imports a handler in a fresh interpreter started with ``-I -S``: no site
packages, no PYTHONPATH, no current directory; ``sys.path`` holds only the built function and
layer directories (and the stand-in for the runtime's boto3), as in Lambda.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from fashion_search.stores.aws.dynamodb_catalog import create_catalog_table
from moto.server import ThreadedMotoServer

from infra.build_lambda import load_template

ACCOUNT = "123456789012"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_RUNNER = textwrap.dedent(
    """
    import importlib, json, sys, time
    paths = json.loads(sys.argv[1])
    sys.path[:0] = paths
    event = json.loads(open(sys.argv[2]).read())
    module_name, _, attr = sys.argv[3].rpartition(".")

    class Context:
        function_name = "fashion-search-test"
        function_version = "$LATEST"
        memory_limit_in_mb = 3008
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
        aws_request_id = "00000000-0000-0000-0000-000000000001"
        log_group_name = "/aws/lambda/test"
        log_stream_name = "test"
        def get_remaining_time_in_millis(self):
            return 60_000

    # Record every AWS call (moto enforces no IAM; the test checks them against the policy).
    import botocore.client
    calls = []
    _call = botocore.client.BaseClient._make_api_call
    def _recorded(self, operation, params):
        keep = ("Bucket", "Key", "Prefix", "VersionId", "TableName", "IndexName", "SecretId")
        calls.append({
            "service": self.meta.service_model.service_name, "operation": operation,
            "params": {k: params[k] for k in keep if k in params},
            "tables": sorted(params.get("RequestItems", {})),
        })
        return _call(self, operation, params)
    botocore.client.BaseClient._make_api_call = _recorded

    started = time.perf_counter()
    module = importlib.import_module(module_name)
    imported = time.perf_counter()
    result = getattr(module, attr)(event, Context())
    done = time.perf_counter()
    # Every imported module must come from the built directories or the standard library.
    stdlib = sys.base_prefix
    strays = sorted(
        m.__file__ for m in list(sys.modules.values())
        if getattr(m, "__file__", None) and m.__file__ != __file__
        and not m.__file__.startswith(tuple(paths))
        and not m.__file__.startswith(stdlib)
    )
    print("@@RESULT@@" + json.dumps({
        "result": result, "strays": strays, "calls": calls,
        "import_s": imported - started, "invoke_s": done - imported,
    }))
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoStack:
    cache_dir: Path
    parameters: dict[str, str] = field(default_factory=dict)
    url: str = ""
    _server: Any = None

    def __post_init__(self) -> None:
        template = load_template()
        self.template = template
        defaults = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
        self.parameters = {**defaults, **self.parameters}
        self.bucket = f"{self.parameters['BucketNamePrefix']}-{ACCOUNT}-{REGION}"
        self.table = "fashion-search-catalog"
        self.idempotency_table = "fashion-search-idempotency"
        self.queue_url = ""

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **CREDENTIALS)

    def start(self) -> MotoStack:
        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def create_resources(self, *, api_keys: list[str]) -> None:
        s3, sqs, ddb = self.client("s3"), self.client("sqs"), self.client("dynamodb")
        self.queue_url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": arn["Attributes"]["QueueArn"],
                        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "prefix", "Value": self.parameters["IngestPrefix"]}
                                ]
                            }
                        },
                    }
                ]
            },
        )
        create_catalog_table(ddb, self.table)
        ddb.create_table(
            TableName=self.idempotency_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        sm = self.client("secretsmanager")
        sm.create_secret(
            Name=self.parameters["ApiKeySecretName"],
            SecretString=json.dumps({"api_keys": api_keys}),
        )

    def put_pinecone_key(self, key: str) -> None:
        sm = self.client("secretsmanager")
        name = self.parameters["PineconeSecretName"]
        try:
            sm.put_secret_value(SecretId=name, SecretString=key)
        except sm.exceptions.ResourceNotFoundException:
            sm.create_secret(Name=name, SecretString=key)

    def upload_dir(self, root: Path, prefix: str) -> None:
        s3 = self.client("s3")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            s3.upload_file(str(path), self.bucket, prefix + path.relative_to(root).as_posix())

    def receive_sqs_event(self) -> dict[str, Any]:
        """The messages waiting in the ingest queue as Lambda's SQS event source delivers them."""
        sqs = self.client("sqs")
        got = sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        )
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ingest"
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in got.get("Messages", [])
        ]
        return {"Records": records}

    def _resolve(self, value: Any) -> str:
        refs = {
            **self.parameters,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "CatalogTable": self.table,
            "IdempotencyTable": self.idempotency_table,
        }
        if isinstance(value, dict) and "Ref" in value:
            return refs[value["Ref"]]
        if isinstance(value, dict) and "Fn::Sub" in value:
            return re.sub(r"\$\{([^}]+)\}", lambda m: refs[m.group(1)], value["Fn::Sub"])
        return str(value)

    def names(self) -> dict[str, str]:
        """Parameters and resource names of this stand-in stack, for resolving the template."""
        return {
            **self.parameters,
            "CatalogTable": self.table,
            "IdempotencyTable": self.idempotency_table,
        }

    def function_env(self, logical_id: str, **overrides: str) -> dict[str, str]:
        """The function's environment per template.yaml (Globals + its own), resolved."""
        variables = dict(self.template["Globals"]["Function"]["Environment"]["Variables"])
        props = self.template["Resources"][logical_id]["Properties"]
        variables.update(props.get("Environment", {}).get("Variables", {}))
        env = {k: self._resolve(v) for k, v in variables.items()}
        env.update(
            AWS_ENDPOINT_URL=self.url,  # every boto3 client, Powertools' included, goes to moto
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            AWS_LAMBDA_FUNCTION_NAME=logical_id,
            FASHION_SEARCH_MODEL__CACHE_DIR=str(self.cache_dir / logical_id),
            PATH="/usr/bin:/bin",
        )
        env.update(overrides)
        return env


@dataclass
class HandlerRun:
    returncode: int
    output: str
    result: Any = None
    strays: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    import_s: float = 0.0
    invoke_s: float = 0.0


def run_handler(
    paths: list[Path],
    event: dict[str, Any],
    *,
    env: dict[str, str],
    workdir: Path,
    handler: str = "app.handler",
    python: str = sys.executable,
) -> HandlerRun:
    runner = workdir / "runner.py"
    runner.write_text(_RUNNER)
    event_file = workdir / "event.json"
    event_file.write_text(json.dumps(event))
    proc = subprocess.run(
        [python, "-I", "-S", "-B", str(runner), json.dumps([str(p) for p in paths])]
        + [str(event_file), handler],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    run = HandlerRun(proc.returncode, output)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            data = json.loads(line.removeprefix("@@RESULT@@"))
            run.result, run.strays, run.calls = data["result"], data["strays"], data["calls"]
            run.import_s, run.invoke_s = data["import_s"], data["invoke_s"]
    return run
