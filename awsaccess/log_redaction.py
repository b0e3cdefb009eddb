"""Keep credentials out of logs, including botocore's DEBUG output (it logs whole response
bodies, and an AssumeRole body is a secret key and a session token)."""

from __future__ import annotations

import logging
import re

_SENSITIVE_FIELDS = (
    r"SecretAccessKey|SessionToken|secret_access_key|session_token|aws_secret_access_key"
    r"|aws_session_token|X-Amz-Security-Token|x-amz-security-token|sessionKey|sessionToken"
)
_PATTERNS = (
    # XML elements: <SessionToken>...</SessionToken>
    (re.compile(rf"(<({_SENSITIVE_FIELDS})>)[^<]*(</\2>)"), r"\1***\3"),
    # dict/JSON/header reprs: 'SessionToken': 'abc', "sessionKey":"abc", x-amz-security-token: abc
    (
        re.compile(rf"""((?:{_SENSITIVE_FIELDS})['"]?\s*[:=]\s*b?['"]?)[^'",\s}}\n]+"""),
        r"\1***",
    ),
)
# Loggers that can see request or response contents.
LOGGER_NAMES = (
    "botocore.parsers",
    "botocore.endpoint",
    "botocore.auth",
    "botocore.hooks",
    "botocore.httpsession",
    "botocore.retryhandler",
    "urllib3.connectionpool",
    "awsaccess",
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_filter = RedactCredentials()


def install() -> None:
    """Idempotent: logging keeps one instance of a filter per logger."""
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
