"""A local AWS and Pinecone for `sam local invoke` and `sam local start-api`, in one command.

    python infra/local_stack.py                       # serves until Ctrl-C
    sam build
    sam local invoke IngestFunction -e events/ingest_s3_put.json --env-vars .aws-sam/local-env.json
    sam local start-api --env-vars .aws-sam/local-env.json

It starts a moto server (S3, SQS, DynamoDB, Secrets Manager on one port) and the project's
Pinecone test server (tests/fakes/pinecone_api.py), both listening on 0.0.0.0 so SAM's
containers reach them; creates what template.yaml declares (the images bucket with its
notification to the ingest queue and DLQ, the catalog and idempotency tables, both secrets, the
Pinecone index with the bundle's dimension); uploads the model bundle (models/demo by default)
where ``FASHION_SEARCH_MODEL__S3_URI`` points; puts one JPEG at the key events/ingest_s3_put.json
names; and writes the ``--env-vars`` file: per function, the template's own variables with the
endpoints replaced by ``http://host.docker.internal:PORT`` (Docker Desktop's name for the host;
on Linux run SAM with ``--add-host host.docker.internal:host-gateway``, or pass
``--container-host 172.17.0.1``). SAM only overrides variables a function declares, which is
why template.yaml declares ``AWS_ENDPOINT_URL`` and ``FASHION_SEARCH_AWS__PINECONE_HOST`` empty.

The API key in the secret is the one the events/api_*.json requests carry.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.cfn import load_template  # noqa: E402

ACCOUNT = "123456789012"  # what `sam local` substitutes for AWS::AccountId
REGION = "us-east-1"
EVENTS = ROOT / "events"
EVENT_BUCKET = "fashion-search-images"  # the bucket the sample S3 events name
EVENT_API_KEY = "fs-test-key-0123456789"  # the X-API-Key the sample API events send
PINECONE_KEY = "local-pinecone-key"
FUNCTIONS = ("IngestFunction", "ApiFunction")
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class LocalStack:
    """The running servers and the names of what was created in them."""

    moto_port: int
    pinecone_port: int
    bucket: str
    parameters: dict[str, str]
    names: dict[str, str]  # logical id -> physical name (tables, queues)
    _servers: list[Any] = field(default_factory=list)

    def env_vars(self, container_host: str) -> dict[str, dict[str, str]]:
        """The ``--env-vars`` document: per function, only variables the template declares."""
        template = load_template()
        shared = template["Globals"]["Function"]["Environment"]["Variables"]
        aws = f"http://{container_host}:{self.moto_port}"
        index = self.parameters["PineconeIndexName"]
        overrides = {
            "AWS_ENDPOINT_URL": aws,
            "FASHION_SEARCH_AWS__PINECONE_HOST": (
                f"http://{container_host}:{self.pinecone_port}/hosts/{index}"
            ),
            "FASHION_SEARCH_AWS__BUCKET": self.bucket,
            "FASHION_SEARCH_MODEL__S3_URI": (
                f"s3://{self.bucket}/models/{self.parameters['ModelName']}/"
            ),
        }
        out: dict[str, dict[str, str]] = {}
        for fn in FUNCTIONS:
            own = template["Resources"][fn]["Properties"].get("Environment", {})
            declared = {**shared, **own.get("Variables", {})}
            values = {k: self._resolve(v) for k, v in declared.items()}
            values.update({k: v for k, v in overrides.items() if k in declared})
            out[fn] = values
        return out

    def write_env_file(self, path: Path, *, container_host: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.env_vars(container_host), indent=2) + "\n")
        return path

    def stop(self) -> None:
        """Stop both servers, emptying moto first: servers in one process share moto's state,
        so what this stack created would otherwise still be there for the next one."""
        import urllib.request

        reset = urllib.request.Request(
            f"http://127.0.0.1:{self.moto_port}/moto-api/reset", method="POST"
        )
        with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 - our own loopback server
            pass
        for server in self._servers:
            server.stop()

    def _resolve(self, value: Any) -> str:
        lookup = {
            **self.parameters,
            **self.names,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
        }
        if isinstance(value, dict) and "Ref" in value:
            return lookup[value["Ref"]]
        if isinstance(value, dict) and "Fn::Sub" in value:
            return re.sub(r"\$\{([^}]+)\}", lambda m: lookup[m.group(1)], value["Fn::Sub"])
        return str(value)


def _client(service: str, url: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=url, region_name=REGION, **CREDENTIALS)


def _put_event_key() -> str:
    event = json.loads((EVENTS / "ingest_s3_put.json").read_text(encoding="utf-8"))
    return unquote_plus(event["Records"][0]["s3"]["object"]["key"])


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (180, 30, 40)).save(buf, format="JPEG")
    return buf.getvalue()


def start(
    *,
    bind: str = "0.0.0.0",  # noqa: S104 - containers must reach it; a dev tool, not a service
    moto_port: int = 0,
    pinecone_port: int = 0,
    bundle: Path = ROOT / "models" / "demo",
    bucket: str = EVENT_BUCKET,
    parameters: dict[str, str] | None = None,
) -> LocalStack:
    """Start both servers and create everything; ``stop()`` the result when done."""
    from fashion_search.model.bundle import Bundle
    from fashion_search.stores.aws.dynamodb_catalog import create_catalog_table
    from moto.server import ThreadedMotoServer

    from tests.fakes.pinecone_api import FakePinecone

    template = load_template()
    params = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    params.update(parameters or {})
    dimension = Bundle.open(bundle).embed_dim
    if dimension is None:
        raise SystemExit(f"{bundle}: config.json gives no embed_dim")

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    moto = ThreadedMotoServer(ip_address=bind, port=moto_port, verbose=False)
    moto.start()
    port = int(moto.get_host_and_port()[1])  # the one it bound when asked for 0
    pinecone = FakePinecone(api_key=PINECONE_KEY, bind=bind, port=pinecone_port).start()
    names = {"CatalogTable": "fashion-search-catalog", "IdempotencyTable": "fashion-search-idem"}
    stack = LocalStack(port, pinecone.port, bucket, params, names, [moto, pinecone])
    url = f"http://127.0.0.1:{port}"
    try:
        sqs, s3 = _client("sqs", url), _client("s3", url)
        dlq = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": 5}
        queue = sqs.create_queue(
            QueueName="ingest",
            Attributes={"VisibilityTimeout": "900", "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        names |= {"IngestQueue": queue, "IngestDeadLetterQueue": dlq}
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        prefix = params["IngestPrefix"]
        rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
        arn = queue_arn["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": rule},
                    {"QueueArn": arn, "Events": ["s3:ObjectRemoved:*"], "Filter": rule},
                ]
            },
        )
        ddb = _client("dynamodb", url)
        create_catalog_table(ddb, names["CatalogTable"])
        ddb.create_table(
            TableName=names["IdempotencyTable"],
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        sm = _client("secretsmanager", url)
        sm.create_secret(Name=params["PineconeSecretName"], SecretString=PINECONE_KEY)
        keys = json.dumps({"api_keys": [EVENT_API_KEY]})
        sm.create_secret(Name=params["ApiKeySecretName"], SecretString=keys)
        pinecone.create_index(params["PineconeIndexName"], dimension=dimension)
        model_prefix = f"models/{params['ModelName']}/"
        for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
            parts = path.relative_to(bundle).parts
            # What `fashion-search aws upload-model` sends: no hidden files, no training state.
            if parts[0] != "train" and not any(part.startswith(".") for part in parts):
                s3.upload_file(str(path), bucket, model_prefix + "/".join(parts))
        s3.put_object(Bucket=bucket, Key=_put_event_key(), Body=_jpeg(), ContentType="image/jpeg")
    except Exception:
        stack.stop()
        raise
    return stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", type=Path, default=ROOT / ".aws-sam" / "local-env.json")
    parser.add_argument("--container-host", default="host.docker.internal")
    parser.add_argument("--bind", default="0.0.0.0")  # noqa: S104 - see start()
    parser.add_argument("--moto-port", type=int, default=5000)
    parser.add_argument("--pinecone-port", type=int, default=5001)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    args = parser.parse_args(argv)
    if not (args.bundle / "config.json").is_file():
        print(f"error: no model bundle at {args.bundle}", file=sys.stderr)
        return 2
    try:
        stack = start(
            bind=args.bind,
            moto_port=args.moto_port,
            pinecone_port=args.pinecone_port,
            bundle=args.bundle,
        )
    except OSError as exc:  # a port in use
        print(f"error: {exc} (choose --moto-port/--pinecone-port)", file=sys.stderr)
        return 1
    env_file = stack.write_env_file(args.env_file, container_host=args.container_host)
    print(f"moto (S3, SQS, DynamoDB, Secrets Manager): http://127.0.0.1:{stack.moto_port}")
    print(f"Pinecone test server: http://127.0.0.1:{stack.pinecone_port}")
    print(f"bucket {stack.bucket}; bundle under models/{stack.parameters['ModelName']}/")
    print(f"env vars: {env_file}")
    print("in another shell:")
    print(f"  sam local invoke IngestFunction -e events/ingest_s3_put.json --env-vars {env_file}")
    print(f"  sam local start-api --env-vars {env_file}")
    print("Ctrl-C stops both servers.")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
