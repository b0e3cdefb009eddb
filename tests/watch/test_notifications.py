import pytest
from django.conf import settings as django_settings

from approvals.models import NotificationDelivery, SecurityAlarm
from approvals.tasks import notification_send
from tests.broker import drain_task_messages
from tests.watch.conftest import event_by
from tests.watch.helpers import active_request


@pytest.fixture
def channels(cast, smtp_server, chat_receiver, settings):
    """Approvers with email, a profile chat channel and a security channel, all on loopback."""
    for user in (cast.requester, cast.alice, cast.bob):
        user.email = f"{user.username}@example.test"
        user.save()
    profile_chat = chat_receiver()
    security_chat = chat_receiver()
    # `watched` deletes the cast's profile for a sandbox one: saving it would bring it back as a
    # second watched profile, whose watch reports the sandbox's own set-up as tampering.
    if cast.profile.pk is not None:
        cast.profile.notify_emails = "oncall@example.test"
        cast.profile.chat_webhook_url = profile_chat.url
        cast.profile.save()
    settings.SECURITY_EMAILS = ["security@example.test"]
    settings.SECURITY_CHAT_WEBHOOK_URL = security_chat.url
    settings.NOTIFY_MAX_ATTEMPTS = 3
    drain_task_messages(wait=0.1)
    yield {"mail": smtp_server, "profile_chat": profile_chat, "security_chat": security_chat}
    drain_task_messages(wait=0.1)


def send_all() -> None:
    """What the worker does with each queued delivery (retries run in-process)."""
    queued = [args[0] for name, args in drain_task_messages(wait=0.2)]
    assert sorted(queued) == sorted(NotificationDelivery.objects.values_list("pk", flat=True))
    for delivery_id in queued:
        notification_send.apply(args=[delivery_id])


def recipients(mailbox) -> set[str]:
    return {address for rcpt_tos, _ in mailbox.messages for address in rcpt_tos}


def test_a_new_request_emails_the_approvers_with_a_link(
    cast, channels, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        access_request = cast.open_request()
    send_all()

    assert recipients(channels["mail"]) == {
        "alice@example.test",
        "bob@example.test",
        "oncall@example.test",
    }
    link = f"{django_settings.PUBLIC_URL}/requests/{access_request.pk}/"
    assert all(link in m.get_payload() for _, m in channels["mail"].messages)
    [chat] = channels["profile_chat"].received
    assert "approval needed" in chat["text"] and link in chat["text"]
    assert set(NotificationDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_a_state_change_reaches_the_requester_and_the_approvers(
    cast, channels, django_capture_on_commit_callbacks
):
    from approvals.services.requests import request_approve
    from tests.conftest import fresh_code

    access_request = cast.open_request()
    drain_task_messages(wait=0.1)
    NotificationDelivery.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        for approver in (cast.alice, cast.bob):
            request_approve(
                access_request_id=access_request.pk,
                approver=approver,
                otp_code=fresh_code(approver),
            )
    # The activation task is queued too; only the notices are sent here.
    queued = drain_task_messages(wait=0.2)
    assert ("approvals.activate_request", [str(access_request.pk)]) in queued
    for name, args in queued:
        if name == "approvals.notification_send":
            notification_send.apply(args=args)

    assert recipients(channels["mail"]) == {
        "rita@example.test",
        "alice@example.test",
        "bob@example.test",
        "oncall@example.test",
    }
    assert {m["Subject"] for _, m in channels["mail"].messages} == {
        "[break-glass] INC-1234 approved; access is being activated"
    }


def test_a_failing_receiver_is_retried_and_does_not_block_the_others(
    cast, channels, django_capture_on_commit_callbacks
):
    channels["profile_chat"].fail_first = 2
    with django_capture_on_commit_callbacks(execute=True):
        cast.open_request()
    send_all()

    chat = NotificationDelivery.objects.get(channel="chat")
    assert (chat.status, chat.attempts, chat.target) == ("sent", 3, f"profile:{cast.profile.slug}")
    assert channels["profile_chat"].attempts == 3
    emails = NotificationDelivery.objects.filter(channel="email")
    assert {(d.status, d.attempts) for d in emails} == {("sent", 1)}
    assert len(channels["mail"].messages) == 3


def test_a_dead_channel_is_given_up_after_the_last_attempt_with_every_attempt_recorded(
    cast, channels, django_capture_on_commit_callbacks
):
    from tests.sandbox_plugin import free_port

    secret_path = "/services/T000/B000/do-not-log-me"
    cast.profile.chat_webhook_url = f"http://127.0.0.1:{free_port()}{secret_path}"
    cast.profile.save()
    with django_capture_on_commit_callbacks(execute=True):
        cast.open_request()
    send_all()

    dead = NotificationDelivery.objects.get(channel="chat")
    assert (dead.status, dead.attempts) == ("failed", 3)
    assert "unreachable" in dead.last_error
    assert secret_path not in dead.last_error and secret_path not in dead.target
    assert len(channels["mail"].messages) == 3


def test_an_unexplained_use_notifies_the_security_channel(
    watched, channels, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        watched.put_events(event_by(watched.profile))
        watched.poll_until(lambda: SecurityAlarm.objects.exists())
    send_all()

    alarm = SecurityAlarm.objects.get()
    [chat] = channels["security_chat"].received
    assert "break-glass ALARM" in chat["text"] and "198.51.100.24" in chat["text"]
    assert "security@example.test" in recipients(channels["mail"])
    assert set(alarm.notifications.values_list("status", flat=True)) == {"sent"}


def test_nothing_is_queued_when_no_channel_is_configured(cast, django_capture_on_commit_callbacks):
    drain_task_messages(wait=0.1)
    with django_capture_on_commit_callbacks(execute=True):
        cast.open_request()
    assert not NotificationDelivery.objects.exists()
    assert drain_task_messages(wait=0.1) == []


def test_an_activation_notice_carries_no_credentials(
    watched, channels, django_capture_on_commit_callbacks
):
    for user in (watched.cast.requester, watched.cast.alice):
        user.email = f"{user.username}@example.test"
        user.save()
    with django_capture_on_commit_callbacks(execute=True):
        access_request = active_request(watched.cast, watched.profile)
    credential = access_request.credential
    for name, args in drain_task_messages(wait=0.2):
        if name == "approvals.notification_send":
            notification_send.apply(args=args)
    bodies = [m.get_payload() for _, m in channels["mail"].messages]
    assert any("active: the break-glass role can be assumed now" in body for body in bodies)
    assert all(credential.access_key_id not in body for body in bodies)


def test_a_chat_url_aimed_inside_is_never_called(cast, channels, settings):
    """An administrator sets the profile's chat URL to the metadata service: nothing is sent."""
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = False
    cast.profile.chat_webhook_url = "http://169.254.169.254/latest/meta-data/"
    cast.profile.save()
    cast.open_request()
    delivery = NotificationDelivery.objects.get(channel="chat", target__startswith="profile:")

    notification_send.apply(args=[delivery.pk])

    delivery.refresh_from_db()
    assert delivery.status == "failed" and "refused" in delivery.last_error
    assert "meta-data" not in delivery.last_error
    assert not channels["profile_chat"].received
