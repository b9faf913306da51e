"""Does a function's template policy allow every AWS call its code actually made?

moto does not enforce IAM, so the package test records each botocore call the handler makes
(service, operation, bucket/key/table/secret) and checks it here against the function's inline
statements, resolved with the test stack's names. A call the policy does not cover would be an
AccessDenied in AWS; this finds it offline.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
# botocore operation -> IAM action, where they differ.
_S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
}


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    s3_prefix: str | None = None  # the s3:prefix condition key of a ListBucket

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}" + (
            f" (prefix {self.s3_prefix})" if self.s3_prefix is not None else ""
        )


def needs(call: dict[str, Any]) -> Iterator[Need]:
    """The IAM permissions one recorded call requires."""
    service, op, params = call["service"], call["operation"], call["params"]
    if service == "s3":
        action = _S3_ACTIONS.get(op, op)
        if action == "ListBucket":
            yield Need(
                "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", params.get("Prefix", "")
            )
            return
        if action == "GetObject" and params.get("VersionId"):
            action = "GetObjectVersion"
        yield Need(f"s3:{action}", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}")
    elif service == "dynamodb":
        tables = call["tables"] or [params["TableName"]]
        for table in tables:
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
            if params.get("IndexName"):
                arn += f"/index/{params['IndexName']}"
            yield Need(f"dynamodb:{op}", arn)
    elif service == "secretsmanager":
        # Secrets Manager appends "-" and 6 random characters to a secret's name in its ARN.
        arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{params['SecretId']}-AbC123"
        yield Need(f"secretsmanager:{op}", arn)
    else:
        yield Need(f"{service}:{op}", "*")


def _matches(pattern: str, value: str) -> bool:
    # IAM wildcards: * any run, ? one character (fnmatch's [..] classes never occur in ARNs).
    return fnmatch.fnmatchcase(value, pattern)


def allowed(statements: list[dict[str, Any]], need: Need, resolve: Callable[[Any], str]) -> bool:
    for stmt in statements:
        if stmt.get("Effect") != "Allow":
            continue
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        if not any(_matches(a, need.action) for a in actions):
            continue
        resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        if not any(_matches(resolve(r), need.resource) for r in resources):
            continue
        condition = stmt.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if condition is not None and (
            need.s3_prefix is None or not _matches(resolve(condition), need.s3_prefix)
        ):
            continue
        return True
    return False


def resolver(names: dict[str, str]) -> Callable[[Any], str]:
    """Resolve Ref / GetAtt X.Arn / Sub with ``names`` (parameters and logical id -> name)."""
    arns = {
        f"{k}.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{v}"
        for k, v in names.items()
        if k.endswith("Table")
    }
    lookup = {**names, **arns, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION}
    lookup["AWS::Partition"] = "aws"

    def name(key: str) -> str:
        # Resources no recorded call touches (queues, log groups) stay placeholders.
        return lookup.get(key, f"<{key}>")

    def resolve(value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return name(value["Ref"])
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return name(".".join(value["Fn::GetAtt"]))
        if isinstance(value, dict) and "Fn::Sub" in value:
            return re.sub(r"\$\{([^}]+)\}", lambda m: name(m.group(1)), value["Fn::Sub"])
        return str(value)

    return resolve


def denied(
    calls: list[dict[str, Any]], statements: list[dict[str, Any]], names: dict[str, str]
) -> list[str]:
    """Every permission the calls needed that the statements do not grant (empty = fine)."""
    resolve = resolver(names)
    missing = {str(n) for call in calls for n in needs(call) if not allowed(statements, n, resolve)}
    return sorted(missing)
