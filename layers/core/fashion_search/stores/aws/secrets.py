"""Secrets of the AWS home, read from Secrets Manager by name through Powertools Parameters."""

from __future__ import annotations

import json
from typing import Any

from fashion_search.errors import ConfigError

# Key names accepted when a secret holds a JSON object rather than the bare value.
_JSON_KEYS = ("api_key", "apiKey", "PINECONE_API_KEY", "value")


def read_secret(name: str, *, client: Any, setting: str, max_age_s: int = 300) -> str:
    """The secret ``name``: its plain string, or ``api_key`` (etc.) of a JSON object.

    ``setting`` is the environment variable that named the secret, so a missing or unreadable
    secret fails start-up with a message saying which setting to fix.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        value = SecretsProvider(boto3_client=client).get(name, max_age=max_age_s)
    except GetParameterError as exc:
        raise ConfigError(
            f"cannot read secret {name!r} (named by {setting}): {exc}", field=setting
        ) from exc
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value or "")
    text = text.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"secret {name!r} (named by {setting}) is malformed JSON") from exc
        found = [document[k] for k in _JSON_KEYS if isinstance(document.get(k), str)]
        if not found:
            raise ConfigError(
                f"secret {name!r} (named by {setting}) is a JSON object without any of "
                f"{', '.join(_JSON_KEYS)}",
                field=setting,
            )
        text = found[0].strip()
    if not text:
        raise ConfigError(f"secret {name!r} (named by {setting}) is empty", field=setting)
    return text
