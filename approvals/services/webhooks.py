"""Outgoing webhooks: state changes and security alarms, signed with HMAC-SHA256.

A delivery row is written in the transaction that changes the state, and the worker is told its
id only after that transaction commits; the worker signs and POSTs it, retrying with exponential
backoff for a bounded time and logging every attempt on the row.

Who receives what: endpoints registered without an integration receive everything; an
integration's endpoints receive the state changes of the requests it opened, and every alarm.
"""

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.errors import RequestInvalid
from approvals.models import (
    AccessRequest,
    IntegrationKey,
    Status,
    TimelineEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from approvals.report import incident_report_dict
from approvals.scrubbing import scrub
from approvals.sealing import seal, unseal
from approvals.services import egress
from approvals.services.queue import Job, RetryLater, enqueue_after_commit
from approvals.timeline import timeline_append

DELIVERY_HEADER = "X-Breakglass-Delivery"
TIMESTAMP_HEADER = "X-Breakglass-Timestamp"
SIGNATURE_HEADER = "X-Breakglass-Signature"
EVENT_HEADER = "X-Breakglass-Event"
MAX_BACKOFF_SECONDS = 600
_ERROR_MAX_LENGTH = 500


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the endpoint's secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def webhook_url_validate(url: str) -> None:
    """The one check of a webhook URL, on every path that sets one (service, command, admin):
    RequestInvalid naming the `url` field when it may not be used."""
    refusal = egress.url_refusal(url)
    if refusal is not None:
        raise RequestInvalid("The webhook URL is not allowed.", fields={"url": [refusal]})


def webhook_endpoint_create(
    *, url: str, integration: IntegrationKey | None = None, actor=None
) -> tuple[WebhookEndpoint, str]:
    """Register a receiver; its signing secret is returned this once and kept sealed."""
    webhook_url_validate(url)
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            integration=integration, url=url, sealed_secret=seal(secret.encode())
        )
        timeline_append(
            access_request=None,
            code="approvals.webhook.registered",
            actor=actor,
            detail={"url": url, "integration": integration.name if integration else ""},
        )
    return endpoint, secret


def webhooks_enqueue(
    *,
    event: str,
    payload: dict[str, Any],
    endpoints: Iterable[WebhookEndpoint] | None = None,
    report_request: AccessRequest | None = None,
) -> list[WebhookDelivery]:
    """One delivery per active endpoint, in the caller's transaction; sent once it commits.

    Other code calls this for security alarms; `endpoints` narrows the audience.
    """
    targets = list(endpoints if endpoints is not None else WebhookEndpoint.objects.all())
    targets = [endpoint for endpoint in targets if endpoint.active]
    if not targets:
        return []
    clean = scrub(payload)  # defence in depth: nothing secret-looking leaves the portal
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint, event=event, payload=clean, report_request=report_request
            )
            for endpoint in targets
        ]
    )
    for delivery in deliveries:
        enqueue_after_commit(Job.DELIVER_WEBHOOK, delivery.pk, best_effort=True)
    return deliveries


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def request_summary(access_request: AccessRequest) -> dict:
    """What a receiver learns about a request: never credentials, codes or secrets."""
    return {
        "id": str(access_request.pk),
        "url": f"{settings.PUBLIC_URL.rstrip('/')}/api/v1/requests/{access_request.pk}/",
        "status": str(access_request.status),
        "profile": access_request.profile.slug,
        "ticket": access_request.ticket,
        "requester": access_request.requester_name,
        "opened_by": access_request.opened_by,
        "created_at": _iso(access_request.created_at),
        "approved_at": _iso(access_request.approved_at),
        "activated_at": _iso(access_request.activated_at),
        "expires_at": _iso(access_request.expires_at),
        "revoked_at": _iso(access_request.revoked_at),
        "failure_reason": access_request.failure_reason,
        "scope": access_request.scope.name if access_request.scope is not None else None,
    }


def _request_endpoints(access_request: AccessRequest):
    """Who hears about a request: endpoints of no integration, and those of the integration that
    opened it."""
    return WebhookEndpoint.objects.filter(active=True).filter(
        Q(integration__isnull=True) | Q(integration__name=access_request.opened_by)
        if access_request.opened_by
        else Q(integration__isnull=True)
    )


def webhooks_extension_changed(
    *, access_request: AccessRequest, extension: dict, timeline_event: TimelineEvent
) -> None:
    """An extension's step (asked, signed, applied, rejected, timed out, failed), to the request's
    audience, in the caller's transaction; `request.expires_at` is the deadline now."""
    webhooks_enqueue(
        event=timeline_event.code,
        payload={
            "request": request_summary(access_request),
            "extension": extension,
            "timeline": {
                "chain": timeline_event.chain,
                "sequence": timeline_event.sequence,
                "hash": timeline_event.hash,
            },
        },
        endpoints=_request_endpoints(access_request),
    )


def webhooks_request_changed(
    *,
    access_request: AccessRequest,
    from_status: Status | None,
    changes: dict,
    timeline_event: TimelineEvent,
    finished: bool = False,
) -> None:
    """Called inside the transaction that opened the request or changed its status.

    When the request has ended, the payload carries its incident report, ready to attach to
    the ticket: built at the first delivery attempt, outside the status change's transaction.
    """
    endpoints = _request_endpoints(access_request)
    summary = request_summary(access_request)
    summary.update({k: _iso(v) if isinstance(v, datetime) else str(v) for k, v in changes.items()})
    payload = {
        "request": summary,
        "previous_status": str(from_status) if from_status else None,
        "timeline": {
            "chain": timeline_event.chain,
            "sequence": timeline_event.sequence,
            "hash": timeline_event.hash,
        },
    }
    webhooks_enqueue(
        event=timeline_event.code,
        payload=payload,
        endpoints=endpoints,
        report_request=access_request if finished else None,
    )


def _report_attach(delivery: WebhookDelivery) -> None:
    """Add the ended request's incident report to the payload, once: retries send the same body."""
    if delivery.report_request_id is None or "incident_report" in delivery.payload:
        return
    access_request = AccessRequest.objects.select_related("profile").get(
        pk=delivery.report_request_id
    )
    delivery.payload = scrub(
        {**delivery.payload, "incident_report": incident_report_dict(access_request)}
    )
    delivery.save(update_fields=["payload"])


def _delivery_body(delivery: WebhookDelivery) -> bytes:
    envelope = {
        "id": str(delivery.delivery_id),
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()


_opener = egress.vetted_opener()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read(1024)
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))


def webhook_deliver(*, delivery_id: int | str) -> None:
    """One attempt; RetryLater (after the attempt is recorded) when another one is due.

    Retries back off exponentially and stop once BREAKGLASS_WEBHOOK_RETRY_SECONDS have passed.
    The row stays locked during the attempt (bounded by the timeout), so a duplicate task
    message skips it instead of posting twice at once.
    """
    with transaction.atomic():
        delivery = (
            # Only the delivery's row: locking the endpoint too would make every other delivery
            # to it look taken, and skip_locked would drop it for good.
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id, delivered_at__isnull=True)
            .first()
        )
        if delivery is None:
            return
        retry_in = _attempt(delivery)
    if retry_in is not None:
        raise RetryLater(f"webhook delivery {delivery_id} failed", seconds=retry_in)


def _attempt(delivery: WebhookDelivery) -> float | None:
    """POST the delivery once and record it → seconds until the next attempt, or None."""
    now = timezone.now()
    entry: dict[str, Any] = {"at": now.isoformat(), "attempt": delivery.attempts + 1}
    if not delivery.endpoint.active:
        entry.update(status=None, error="endpoint disabled; not sent", final=True)
        _record(delivery, entry)
        return None
    _report_attach(delivery)
    body = _delivery_body(delivery)
    timestamp = str(int(time.time()))
    secret = unseal(delivery.endpoint.sealed_secret).decode()
    started = time.monotonic()
    status, error = _post(
        delivery.endpoint.url,
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": "breakglass-portal-webhooks/1",
            DELIVERY_HEADER: str(delivery.delivery_id),
            EVENT_HEADER: delivery.event,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(secret=secret, timestamp=timestamp, body=body),
        },
    )
    entry.update(
        status=status,
        error=error[:_ERROR_MAX_LENGTH],
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    if status is not None and 200 <= status < 300:
        delivery.delivered_at = timezone.now()
        _record(delivery, entry)
        return None
    delay = min(settings.WEBHOOK_BACKOFF_SECONDS * 2**delivery.attempts, MAX_BACKOFF_SECONDS)
    elapsed = (now - delivery.created_at).total_seconds()
    if elapsed + delay > settings.WEBHOOK_RETRY_SECONDS:
        entry["final"] = True
        _record(delivery, entry)
        return None
    entry["next_attempt_in_s"] = delay
    _record(delivery, entry)
    return float(delay)


def _record(delivery: WebhookDelivery, entry: dict) -> None:
    delivery.attempts += 1
    delivery.attempt_log = [*delivery.attempt_log, entry]
    delivery.last_status = entry.get("status")
    delivery.last_error = entry.get("error", "")
    delivery.save(
        update_fields=["attempts", "attempt_log", "last_status", "last_error", "delivered_at"]
    )
