"""How programs reach the portal: personal API tokens, integration keys, and idempotent
retries of the API's writes. Secrets are shown once and only their SHA-256 is kept."""

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.errors import IdempotencyConflict, NotAllowed, NotFound, RequestInvalid
from approvals.models import IdempotencyRecord, IntegrationKey, PersonalToken
from approvals.timeline import timeline_append

PERSONAL_TOKEN_PREFIX = "bgp_"  # noqa: S105 (a prefix, not a token)
INTEGRATION_KEY_PREFIX = "bgi_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


PERSONAL_TOKEN_DEFAULT_DAYS = 90
PERSONAL_TOKEN_MAX_DAYS = 366
PERSONAL_TOKEN_NAME_MAX_LENGTH = 100


def personal_token_create(
    *, user: User, name: str = "", days: int = PERSONAL_TOKEN_DEFAULT_DAYS
) -> str:
    """A new personal API token that expires after `days`; only its hash is kept, so this is the
    one time it is seen."""
    name = (name or "").strip()
    if len(name) > PERSONAL_TOKEN_NAME_MAX_LENGTH:
        raise RequestInvalid(
            "The token's name is too long.",
            fields={"name": [f"name must be at most {PERSONAL_TOKEN_NAME_MAX_LENGTH} characters"]},
        )
    if isinstance(days, bool) or not 1 <= days <= PERSONAL_TOKEN_MAX_DAYS:
        raise RequestInvalid(
            "The token's lifetime is not valid.",
            fields={"days": [f"days must be between 1 and {PERSONAL_TOKEN_MAX_DAYS}"]},
        )
    token = f"{PERSONAL_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    expires_at = timezone.now() + timedelta(days=days)
    with transaction.atomic():
        PersonalToken.objects.create(
            user=user,
            name=name,
            prefix=token[:12],
            token_hash=_secret_hash(token),
            expires_at=expires_at,
        )
        timeline_append(
            access_request=None,
            code="approvals.token.created",
            actor=user,
            detail={"prefix": token[:12], "name": name, "expires_at": expires_at.isoformat()},
        )
    return token


def integration_key_create(
    *, name: str, expires_at: datetime | None = None, actor=None
) -> tuple[IntegrationKey, str]:
    """A new integration key; only its hash is kept, so this is the one time it is seen."""
    name = (name or "").strip()
    if not name:
        raise RequestInvalid("An integration needs a name.", fields={"name": ["name is required"]})
    if IntegrationKey.objects.filter(name=name).exists():
        raise RequestInvalid(
            "That integration name is taken.",
            fields={"name": [f"an integration called {name!r} already exists"]},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise RequestInvalid(
            "The expiry is in the past.",
            fields={"expires_at": ["expires_at must be in the future"]},
        )
    key = f"{INTEGRATION_KEY_PREFIX}{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        integration = IntegrationKey.objects.create(
            name=name, prefix=key[:12], key_hash=_secret_hash(key), expires_at=expires_at
        )
        timeline_append(
            access_request=None,
            code="approvals.integration_key.created",
            actor=actor,
            detail={
                "integration": name,
                "prefix": key[:12],
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return integration, key


def integration_key_revoke(*, integration_key_id: int, actor=None) -> IntegrationKey:
    with transaction.atomic():
        integration = (
            IntegrationKey.objects.select_for_update().filter(pk=integration_key_id).first()
        )
        if integration is None:
            raise NotFound(f"no integration key {integration_key_id}")
        if integration.revoked_at is None:
            integration.revoked_at = timezone.now()
            integration.save(update_fields=["revoked_at"])
            timeline_append(
                access_request=None,
                code="approvals.integration_key.revoked",
                actor=actor,
                detail={"integration": integration.name, "prefix": integration.prefix},
            )
    return integration


def personal_token_revoke(*, token_id: int, user) -> PersonalToken:
    """The owner withdraws one of their tokens (idempotent)."""
    with transaction.atomic():
        token = PersonalToken.objects.select_for_update().filter(pk=token_id, user=user).first()
        if token is None:
            raise NotFound(f"you have no API token {token_id}")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            timeline_append(
                access_request=None,
                code="approvals.token.revoked",
                actor=user,
                detail={"prefix": token.prefix, "name": token.name},
            )
    return token


def _touch_last_used(model, obj, now) -> None:
    # Minute resolution: a busy integration must not turn every read into a write.
    if obj.last_used_at is None or now - obj.last_used_at >= _LAST_USED_RESOLUTION:
        model.objects.filter(pk=obj.pk).update(last_used_at=now)
        obj.last_used_at = now


def personal_token_authenticate(*, token: str) -> PersonalToken:
    """The live token for this secret, or NotAllowed saying why not."""
    found = (
        PersonalToken.objects.select_related("user").filter(token_hash=_secret_hash(token)).first()
    )
    if found is None:
        raise NotAllowed("unknown API token")
    if found.revoked_at is not None:
        raise NotAllowed("this API token was revoked")
    now = timezone.now()
    if found.expires_at is not None and found.expires_at <= now:
        raise NotAllowed(f"this API token expired at {found.expires_at:%Y-%m-%d %H:%M} UTC")
    if not found.user.is_active:
        raise NotAllowed(f"user {found.user.get_username()} is not active")
    _touch_last_used(PersonalToken, found, now)
    return found


def integration_key_authenticate(*, key: str) -> IntegrationKey:
    """The live integration key for this secret, or NotAllowed saying why not."""
    found = IntegrationKey.objects.filter(key_hash=_secret_hash(key)).first()
    if found is None:
        raise NotAllowed("unknown integration key")
    now = timezone.now()
    if found.revoked_at is not None:
        raise NotAllowed(f"integration key of {found.name} was revoked")
    if found.expires_at is not None and found.expires_at <= now:
        raise NotAllowed(
            f"integration key of {found.name} expired at {found.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    _touch_last_used(IntegrationKey, found, now)
    return found


@dataclass(frozen=True)
class IdempotentResponse:
    status: int
    body: dict
    replayed: bool


IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")


def idempotency_run(
    *, caller: str, key: str, body: dict, produce: Callable[[], tuple[int, dict]]
) -> IdempotentResponse:
    """Run `produce` once per (caller, key); a retry with the same body gets the first response.

    The placeholder row is inserted first: a concurrent retry blocks on its unique index until
    this transaction ends, then replays what it committed (or runs again if it rolled back).
    Only successes are kept, so a refused attempt can be corrected and retried with the same key.
    """
    if not IDEMPOTENCY_KEY_PATTERN.match(key or ""):
        raise RequestInvalid(
            "The Idempotency-Key header is not valid.",
            fields={
                "Idempotency-Key": ["Idempotency-Key must be 1-200 printable ASCII characters"]
            },
        )
    body_hash = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    caller=caller, key=key, body_hash=body_hash, response_status=0, response_body={}
                )
        except IntegrityError:
            first = IdempotencyRecord.objects.get(caller=caller, key=key)
            if first.body_hash != body_hash:
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was already used with a different body"
                ) from None
            return IdempotentResponse(first.response_status, first.response_body, replayed=True)
        status, response_body = produce()
        record.response_status = status
        record.response_body = response_body
        record.save(update_fields=["response_status", "response_body"])
    return IdempotentResponse(status, response_body, replayed=False)
