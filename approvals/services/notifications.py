"""Where the portal tells people things: email (Django's email backend) and Slack-compatible chat
webhooks, per access profile, plus a global security channel.

A notice is stored first (one NotificationDelivery per channel and address), then sent by a
Celery task with retries, so a channel that is down never blocks the workflow or the other
channels, and every attempt is visible. Notices never carry a secret; a chat webhook URL is a
secret itself, so deliveries name the channel ("security", "profile:<slug>"), not the URL.
"""

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from approvals.models import (
    AccessProfile,
    AccessRequest,
    GrantExtension,
    NotificationDelivery,
    SecurityAlarm,
)
from approvals.services import egress
from approvals.services.queue import Job, RetryLater, enqueue_after_commit

logger = logging.getLogger("approvals.notifications")

EMAIL = "email"
CHAT = "chat"
SECURITY_CHAT = "security"
_PROFILE_CHAT_PREFIX = "profile:"

# What the requester and approvers hear about, by the status a request reached.
REQUEST_EVENTS = {
    "approved": "approved; access is being activated",
    "active": "active: the break-glass role can be assumed now",
    "revoked": "revoked: access has ended",
    "failed": "failed to activate",
}


class DeliveryFailed(Exception):
    """One attempt to one channel failed; the task retries it."""


@dataclass(frozen=True)
class Notice:
    event: str
    subject: str
    body: str
    emails: tuple[str, ...] = ()
    chats: tuple[str, ...] = ()  # "security" or "profile:<slug>"
    access_request: AccessRequest | None = None
    alarm: SecurityAlarm | None = None


def request_link(access_request: AccessRequest) -> str:
    return f"{settings.PUBLIC_URL.rstrip('/')}/requests/{access_request.pk}/"


def _split_emails(text: str) -> list[str]:
    return [item.strip() for item in text.replace(";", ",").split(",") if item.strip()]


def _approver_emails(profile: AccessProfile) -> list[str]:
    return list(
        get_user_model()
        .objects.filter(groups=profile.approver_group_id, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def _requester_emails(access_request: AccessRequest) -> list[str]:
    requester = access_request.requester
    return [requester.email] if requester is not None and requester.email else []


def _profile_chats(profile: AccessProfile) -> list[str]:
    return [f"{_PROFILE_CHAT_PREFIX}{profile.slug}"] if profile.chat_webhook_url else []


def _security_emails() -> list[str]:
    return list(settings.SECURITY_EMAILS)


def _security_chats() -> list[str]:
    return [SECURITY_CHAT] if settings.SECURITY_CHAT_WEBHOOK_URL else []


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item.lower() if "@" in item else item for item in items))


def notify(notice: Notice) -> list[NotificationDelivery]:
    """Store one delivery per channel and queue its sending once the caller's transaction
    commits (ids only in the message)."""
    rows = [
        NotificationDelivery(
            channel=channel,
            target=target,
            event=notice.event,
            subject=notice.subject[:300],
            body=notice.body,
            request=notice.access_request,
            alarm=notice.alarm,
        )
        for channel, targets in ((EMAIL, _unique(notice.emails)), (CHAT, _unique(notice.chats)))
        for target in targets
    ]
    if not rows:
        return []
    deliveries = NotificationDelivery.objects.bulk_create(rows)
    for delivery in deliveries:
        # Best effort: with the broker down the delivery stays pending and visible.
        enqueue_after_commit(Job.SEND_NOTIFICATION, delivery.pk, best_effort=True)
    return deliveries


def notify_request_changed(*, access_request_id, event: str) -> None:
    """Notices for a request's new state ("opened" or a status), stored in the caller's
    transaction and sent only once it commits; nothing is queued when nobody is to be told."""
    if event not in REQUEST_EVENTS and event != "opened":
        return
    try:
        # A savepoint: a notice that cannot be built must never undo the workflow's change.
        with transaction.atomic():
            notify_request_event(access_request_id=access_request_id, event=event)
    except Exception:
        logger.exception("notices for request %s (%s) not stored", access_request_id, event)


def notify_request_event(*, access_request_id, event: str) -> list[NotificationDelivery]:
    access_request = (
        AccessRequest.objects.select_related("profile", "requester")
        .filter(pk=access_request_id)
        .first()
    )
    if access_request is None:
        return []
    profile = access_request.profile
    header = (
        f"Request: {access_request.ticket} for {profile.name} ({profile.slug}), "
        f"account {profile.account_id}\n"
        f"Requester: {access_request.requester_name}\n"
        f"Duration: {access_request.duration_minutes} minutes\n"
        f"Justification: {access_request.justification}\n"
        f"Link: {request_link(access_request)}\n"
    )
    if event == "opened":
        notice = Notice(
            event="request.opened",
            subject=f"[break-glass] {access_request.ticket}: approval needed for {profile.slug}",
            body=(
                f"{access_request.requester_name} asks for break-glass access. Two approvers "
                f"must sign with a fresh TOTP code before "
                f"{access_request.approval_deadline:%Y-%m-%d %H:%M} UTC.\n\n{header}"
            ),
            emails=(*_approver_emails(profile), *_split_emails(profile.notify_emails)),
            chats=tuple(_profile_chats(profile)),
            access_request=access_request,
        )
    else:
        detail = ""
        if event == "failed" and access_request.failure_reason:
            detail = f"Reason: {access_request.failure_reason}\n"
        if event == "active" and access_request.expires_at:
            detail = f"Access ends at {access_request.expires_at:%Y-%m-%d %H:%M:%S} UTC\n"
        notice = Notice(
            event=f"request.{event}",
            subject=f"[break-glass] {access_request.ticket} {REQUEST_EVENTS[event].split(':')[0]}",
            body=f"The request is {REQUEST_EVENTS[event]}.\n{detail}\n{header}",
            emails=(
                *_requester_emails(access_request),
                *_approver_emails(profile),
                *_split_emails(profile.notify_emails),
            ),
            chats=tuple(_profile_chats(profile)),
            access_request=access_request,
        )
    return notify(notice)


# What people hear about an extension of a grant, by its step.
EXTENSION_EVENTS = {
    "requested": "asks for more time: two approvers must sign",
    "applied": "extended: the deadline moved",
    "rejected": "extension rejected: the deadline stays",
    "timed_out": "extension not signed in time: the deadline stays",
    "failed": "extension could not be applied: the deadline stays",
}


def notify_extension_changed(*, extension_id, event: str) -> None:
    """Notices of an extension's step, stored in the caller's transaction (never undoing it)."""
    if event not in EXTENSION_EVENTS:
        return
    try:
        with transaction.atomic():
            _notify_extension_event(extension_id=extension_id, event=event)
    except Exception:
        logger.exception("notices for extension %s (%s) not stored", extension_id, event)


def _notify_extension_event(*, extension_id, event: str) -> list[NotificationDelivery]:
    extension = (
        GrantExtension.objects.select_related("request__profile", "request__requester")
        .filter(pk=extension_id)
        .first()
    )
    if extension is None:
        return []
    access_request, profile = extension.request, extension.request.profile
    body = (
        f"{access_request.ticket} on {profile.slug} {EXTENSION_EVENTS[event]}.\n"
        f"Asked by {extension.requester_name}: {extension.minutes} more minutes.\n"
        f"Reason: {extension.reason}\n{_extension_deadline_line(extension, event)}: "
        f"{request_link(access_request)}\n"
    )
    requester = () if event == "requested" else tuple(_requester_emails(access_request))
    headline = EXTENSION_EVENTS[event].split(":")[0]
    return notify(
        Notice(
            event=f"extension.{event}",
            subject=f"[break-glass] {access_request.ticket} {headline}",
            body=body,
            emails=(
                *requester,
                *_approver_emails(profile),
                *_split_emails(profile.notify_emails),
            ),
            chats=tuple(_profile_chats(profile)),
            access_request=access_request,
        )
    )


def _extension_deadline_line(extension: GrantExtension, event: str) -> str:
    """What the step means for the deadline; only a pending extension can still be signed."""
    was, asked = (
        f"{extension.from_expires_at:%Y-%m-%d %H:%M:%S} UTC",
        f"{extension.to_expires_at:%Y-%m-%d %H:%M:%S} UTC",
    )
    if event == "requested":
        return (
            f"It would move the deadline from {was} to {asked}. "
            f"Sign before {extension.approval_deadline:%H:%M:%S} UTC"
        )
    if event == "applied":
        return f"The deadline moved from {was} to {asked}"
    return f"The deadline stays {was}"


def notify_alarm(*, alarm: SecurityAlarm) -> list[NotificationDelivery]:
    """Alarms go to the security channel always, and to the profile's own channels."""
    profile = alarm.profile
    lines = [f"Security alarm ({alarm.kind}): {alarm.title}", f"Opened: {alarm.opened_at:%c} UTC"]
    if alarm.request is not None:
        lines.append(f"Request: {request_link(alarm.request)}")
    lines += [f"{key}: {value}" for key, value in sorted(alarm.detail.items())]
    lines.append(
        f"Acknowledge it with a note at {settings.PUBLIC_URL.rstrip('/')}/ "
        "(it stays open until a person does)."
    )
    return notify(
        Notice(
            event=f"alarm.{alarm.kind}",
            subject=f"[break-glass ALARM] {alarm.title}",
            body="\n".join(lines),
            emails=(
                *_security_emails(),
                *(_split_emails(profile.notify_emails) if profile else []),
            ),
            chats=(*_security_chats(), *(_profile_chats(profile) if profile else [])),
            access_request=alarm.request,
            alarm=alarm,
        )
    )


def notify_revocation_overdue(*, access_request: AccessRequest, overdue_seconds: int) -> None:
    logger.error(
        "ALARM revocation overdue: request %s (%s) is %s s past its deadline and still %s",
        access_request.pk,
        access_request.ticket,
        overdue_seconds,
        access_request.status,
    )
    profile = access_request.profile
    notify(
        Notice(
            event="request.revocation_overdue",
            subject=(
                f"[break-glass ALARM] {access_request.ticket}: revocation overdue by "
                f"{overdue_seconds} s"
            ),
            body=(
                f"Access for {access_request.ticket} on {profile.slug} should have ended "
                f"{overdue_seconds} s ago and is still {access_request.status}. The sweeper keeps "
                "retrying; AWS itself refuses new sessions after the deadline.\n"
                f"Link: {request_link(access_request)}\n"
            ),
            emails=(
                *_security_emails(),
                *_requester_emails(access_request),
                *_approver_emails(profile),
                *_split_emails(profile.notify_emails),
            ),
            chats=(*_security_chats(), *_profile_chats(profile)),
            access_request=access_request,
        )
    )


# --- Sending (the Celery task's side) ---------------------------------------------------------


def notification_deliver(*, delivery_id: int) -> None:
    """One attempt at one delivery (idempotent); RetryLater, once the failed attempt is recorded,
    until BREAKGLASS_NOTIFY_MAX_ATTEMPTS attempts have been made."""
    with transaction.atomic():
        delivery = (
            NotificationDelivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status == "sent":
            return
        delivery.attempts += 1
        last_attempt = delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS
        try:
            _send(delivery)
        except DeliveryFailed as exc:
            delivery.status = "failed" if last_attempt else "retrying"
            delivery.last_error = str(exc)[:2000]
            delivery.save(update_fields=["attempts", "status", "last_error"])
            logger.warning(
                "notification %s (%s to %s) attempt %s failed: %s",
                delivery.pk,
                delivery.channel,
                delivery.target,
                delivery.attempts,
                exc,
            )
            if last_attempt:
                return
            retry_in = min(settings.NOTIFY_RETRY_SECONDS * 2 ** (delivery.attempts - 1), 600)
        else:
            delivery.status = "sent"
            delivery.delivered_at = timezone.now()
            delivery.save(update_fields=["attempts", "status", "delivered_at"])
            return
    # Raised after the commit, so the attempt stays recorded.
    raise RetryLater(f"notification {delivery_id} failed", seconds=retry_in)


def _send(delivery: NotificationDelivery) -> None:
    if delivery.channel == EMAIL:
        _send_email(delivery)
    elif delivery.channel == CHAT:
        _send_chat(delivery)
    else:
        raise DeliveryFailed(f"unknown channel {delivery.channel!r}")


def _send_email(delivery: NotificationDelivery) -> None:
    try:
        connection = get_connection(fail_silently=False, timeout=settings.NOTIFY_TIMEOUT_SECONDS)
        EmailMessage(
            subject=delivery.subject,
            body=delivery.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[delivery.target],
            connection=connection,
        ).send()
    except Exception as exc:  # smtplib, socket and backend errors alike
        raise DeliveryFailed(f"email: {type(exc).__name__}: {exc}") from None


def _chat_url(target: str) -> str:
    url: str | None
    if target == SECURITY_CHAT:
        url = settings.SECURITY_CHAT_WEBHOOK_URL
    elif target.startswith(_PROFILE_CHAT_PREFIX):
        slug = target.removeprefix(_PROFILE_CHAT_PREFIX)
        url = (
            AccessProfile.objects.filter(slug=slug)
            .values_list("chat_webhook_url", flat=True)
            .first()
        )
    else:
        url = None
    if not url:
        raise DeliveryFailed(f"no chat webhook configured for {target}")
    refusal = egress.url_refusal(url)
    if refusal is not None:
        # The reason may name the host, never the path: for Slack the path is the secret.
        raise DeliveryFailed(f"chat webhook for {target} refused: {refusal}")
    return url


def _send_chat(delivery: NotificationDelivery) -> None:
    payload = json.dumps({"text": f"*{delivery.subject}*\n{delivery.body}"}).encode()
    request = urllib.request.Request(  # noqa: S310 (checked by egress in _chat_url)
        _chat_url(delivery.target),
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        # Connects only to vetted addresses, like webhooks: an admin cannot aim a chat URL at
        # the metadata service or the sandbox's control API.
        with egress.vetted_opener().open(
            request, timeout=settings.NOTIFY_TIMEOUT_SECONDS
        ) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        # Never echo the URL: for Slack it is the secret.
        raise DeliveryFailed(f"chat webhook {delivery.target} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"chat webhook {delivery.target} unreachable: {reason}") from None
