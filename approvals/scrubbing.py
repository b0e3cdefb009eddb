"""The one scrubber: nothing secret-looking is stored on the timeline, in an observed event, a
poison message or a webhook payload."""

import json
import re
from typing import Any

SCRUBBED = "[scrubbed]"
_SECRET_KEY_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "otp",
    "credential",
    "authorization",
    "private_key",
    "api_key",
)
# Identifiers that name a secret without being one; CloudTrail records keep them for the audit.
_NOT_SECRET_KEYS = frozenset({"accesskeyid", "access_key_id", "credentials"})
_SECRET_JSON_TEXT = re.compile(
    r'("(?:sessionToken|secretAccessKey|SessionToken|SecretAccessKey)"\s*:\s*)"[^"]*"'
)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered in _NOT_SECRET_KEYS:
        return False
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def scrub(value: Any) -> Any:
    """Blank every value whose key looks secret, at any depth (containers are searched, not
    dropped, so a CloudTrail `credentials` object keeps its access key id). Round-trips via JSON,
    so a hash computed over the result sees exactly what is stored."""

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                key: SCRUBBED
                if _is_secret_key(str(key)) and not isinstance(child, dict | list)
                else clean(child)
                for key, child in item.items()
            }
        if isinstance(item, list | tuple):
            return [clean(child) for child in item]
        return item

    return json.loads(json.dumps(clean(value), default=str))


def scrub_text(text: str) -> str:
    """For a body that could not be parsed: blank the secret fields a CloudTrail record carries."""
    return _SECRET_JSON_TEXT.sub(rf'\1"{SCRUBBED}"', text or "")
