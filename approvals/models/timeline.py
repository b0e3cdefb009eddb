"""The tamper-evident timeline's rows: append-only events, hash-chained per request."""

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models

from approvals.models.requests import AccessRequest


class TimelineEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # The one update we allow: Django nulling the actor when a user is deleted. The copied
        # actor_name, which the hash covers, keeps the record intact.
        if set(kwargs) <= {"actor", "actor_id"} and all(v is None for v in kwargs.values()):
            return super().update(**kwargs)
        raise TypeError("Timeline events are append-only.")

    def delete(self):
        raise TypeError("Timeline events are append-only.")


class TimelineEvent(models.Model):
    """One step of an incident record, hash-chained to the previous step of the same chain.

    Each request has its own chain (`request:<id>`), so an integration can verify a request's
    record on its own; events not about a request (sign-in failures, alarms) share `system`.
    """

    chain = models.CharField(max_length=64)
    sequence = models.PositiveBigIntegerField()
    request = models.ForeignKey(
        AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    code = models.CharField(max_length=100)
    outcome = models.CharField(max_length=16, default="success")
    detail = models.JSONField(default=dict)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = TimelineEventQuerySet.as_manager()

    class Meta:
        ordering = ["chain", "sequence"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["chain", "sequence"], name="timeline_chain_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.chain}#{self.sequence} {self.code}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("Timeline events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Timeline events are append-only.")


class TimelineHead(models.Model):
    """The last event of each chain: serialises appends and lets verification detect truncation."""

    chain = models.CharField(max_length=64, primary_key=True)
    sequence = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.chain}@{self.sequence}"


class TimelineCheckpoint(models.Model):
    """A signed statement of every chain head at one moment, published outside the database.

    `header` is what the signature covers (approvals/services/checkpoints.py); it names the
    SHA-256 of the canonical head list, which only the newest checkpoint keeps here (every one is
    kept whole in the anchor bucket).
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    header = models.JSONField()
    digest = models.CharField(max_length=64, help_text="SHA-256 of the signed header.")
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=128)
    heads = models.JSONField(null=True, blank=True)
    anchor_key = models.CharField(max_length=300, blank=True)
    anchor_version = models.CharField(max_length=200, blank=True)
    anchored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"checkpoint #{self.sequence}"


# The one canonical JSON of the chain formula (the README publishes it).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_canonical = _ENCODER.encode


def _chunks_encoder() -> Callable[[Any, int], Sequence[str]]:
    """`_canonical`'s chunks without building an encoder per call (`encode` does: a fifth of a
    verification's time per event): CPython's C encoder made once, with the arguments
    `JSONEncoder.iterencode` gives it, except the circular check (the formula's input is
    JSON-shaped data). Where there is no C encoder, `_canonical` itself."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda value, _level: (_canonical(value),)
    return make(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, True
    )


_encode_chunks = _chunks_encoder()


def event_hash_of(
    chain: str,
    sequence: int,
    prev_hash: str,
    created_at_text: str,
    actor_name: str,
    code: str,
    outcome: str,
    detail: dict,
    source_ip: str | None,
    user_agent: str,
) -> str:
    """The formula, positional and with the time already as text: the verifier's inner loop."""
    payload = "".join(
        _encode_chunks(
            [
                chain,
                sequence,
                prev_hash,
                created_at_text,
                actor_name,
                code,
                outcome,
                detail,
                source_ip or "",
                user_agent,
            ],
            0,
        )
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def event_hash(
    *,
    chain: str,
    sequence: int,
    prev_hash: str,
    created_at: datetime,
    actor_name: str,
    code: str,
    outcome: str,
    detail: dict,
    source_ip: str | None,
    user_agent: str,
) -> str:
    """SHA-256 over a canonical JSON of everything an event says, and the previous hash."""
    return event_hash_of(
        chain,
        sequence,
        prev_hash,
        created_at.isoformat(timespec="microseconds"),
        actor_name,
        code,
        outcome,
        detail,
        source_ip,
        user_agent,
    )
