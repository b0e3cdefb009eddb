"""Sign-in throttling from the attacker's side, behind the TLS proxy production requires: the
delay concerns one username from one address, an attacker elsewhere cannot aim it at an
approver, concurrent guesses cannot exceed the limit, and refused attempts cannot grow the
record without bound."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals.models import SigninThrottle
from approvals.services.identity import signin_throttles_purge
from tests.web.helpers import system_events

PROXY = "10.0.0.2"
ATTACKER = "203.0.113.66"
ALICE_HOME = "198.51.100.7"


def behind_proxy(address: str) -> Client:
    """A browser whose requests reach the portal through our one proxy."""
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=address)


def sign_in(client: Client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def right_password(user) -> str:
    return f"{user.username}-password-123"


@pytest.mark.django_db
def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(cast, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    sign_in(Client(REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="1.2.3.4"), "alice", "x")
    assert system_events("approvals.signin.failed").get().source_ip == "192.0.2.10"


@pytest.mark.django_db
def test_with_one_trusted_proxy_the_address_it_saw_is_used_not_the_clients_claim(cast, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="1.2.3.4, 192.0.2.10")
    sign_in(client, "alice", "x")
    assert system_events("approvals.signin.failed").get().source_ip == "192.0.2.10"


@pytest.mark.django_db
@pytest.mark.parametrize("forwarded", ["not-an-address", "", " , ", "1.2.3.4:80<script>"])
def test_garbage_forwarded_for_falls_back_to_the_peer_address(cast, settings, forwarded):
    settings.TRUSTED_PROXY_COUNT = 1
    sign_in(Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded), "alice", "x")
    assert system_events("approvals.signin.failed").get().source_ip == PROXY


@pytest.mark.django_db
def test_twenty_failures_from_one_address_do_not_lock_out_another_user_elsewhere(cast, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = behind_proxy(ATTACKER)
    for attempt in range(20):
        sign_in(attacker, f"someone{attempt}", "guess")
    assert sign_in(attacker, "carol", "guess").status_code == 400
    response = sign_in(behind_proxy("198.51.100.20"), "bob", right_password(cast.bob))
    assert response.status_code == 302 and response.url == reverse("login_otp")


@pytest.mark.django_db
def test_wrong_passwords_for_alice_from_the_attacker_do_not_stop_alice(cast, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = behind_proxy(ATTACKER)
    for _ in range(settings.SIGNIN_MAX_FAILURES + 3):
        sign_in(attacker, "alice", "guess")
    # The attacker is slowed down, even with the right password ...
    refused = sign_in(attacker, "alice", right_password(cast.alice))
    assert refused.status_code == 400 and b"too many failed sign-ins" in refused.content
    # ... but alice, from her own address, signs in.
    response = sign_in(behind_proxy(ALICE_HOME), "alice", right_password(cast.alice))
    assert response.status_code == 302 and response.url == reverse("login_otp")


@pytest.mark.django_db
def test_the_delay_grows_with_each_failure_and_then_lets_the_user_try_again(cast, settings):
    settings.SIGNIN_MAX_FAILURES = 2
    settings.SIGNIN_DELAY_SECONDS = 30
    client = Client()
    delays = []
    for _ in range(4):
        assert b"not right" in sign_in(client, "alice", "guess").content
        row = SigninThrottle.objects.get(username="alice")
        if row.blocked_until is not None:
            delays.append(row.blocked_until - row.last_failure_at)
            # The delay passes (the row is moved back in time: nothing of ours is mocked).
            SigninThrottle.objects.filter(pk=row.pk).update(
                blocked_until=timezone.now() - timedelta(seconds=1)
            )
    assert delays == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert sign_in(client, "alice", right_password(cast.alice)).status_code == 302
    assert SigninThrottle.objects.get(username="alice").failures == 0


@pytest.mark.django_db
def test_throttled_attempts_write_at_most_one_event_per_window(cast, settings):
    settings.SIGNIN_MAX_FAILURES = 1
    client = Client()
    sign_in(client, "alice", "guess")
    for _ in range(30):
        sign_in(client, "alice", "guess")
    (event,) = system_events("approvals.signin.throttled")
    assert event.detail == {"username": "alice", "count": 1}
    assert system_events("approvals.signin.failed").count() == 1
    assert SigninThrottle.objects.get(username="alice").throttled_unreported == 29
    # A window later, the next refused attempt reports everything since, in one event.
    SigninThrottle.objects.filter(username="alice").update(
        throttled_reported_at=timezone.now() - timedelta(minutes=16)
    )
    sign_in(client, "alice", "guess")
    counts = [e.detail["count"] for e in system_events("approvals.signin.throttled")]
    assert sorted(counts) == [1, 30]


@pytest.mark.django_db(transaction=True)
def test_concurrent_guesses_cannot_exceed_the_limit(cast, settings):
    """Real threads, each with its own PostgreSQL connection, guess at the same moment."""
    settings.SIGNIN_MAX_FAILURES = 3
    guessers = 12
    start = threading.Barrier(guessers, timeout=30)
    statuses: list[int] = []

    def guess() -> None:
        try:
            start.wait()
            statuses.append(sign_in(Client(), "alice", "guess").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(guessers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert statuses == [400] * guessers
    assert system_events("approvals.signin.failed").count() == 3
    assert SigninThrottle.objects.get(username="alice").failures == 3


def _a_window_passes(settings) -> None:
    """Every counter's times move a window and a minute back (nothing of ours is mocked)."""
    back = timedelta(minutes=settings.SIGNIN_FAILURE_WINDOW_MINUTES + 1)
    for row in SigninThrottle.objects.all():
        SigninThrottle.objects.filter(pk=row.pk).update(
            last_failure_at=row.last_failure_at and row.last_failure_at - back,
            blocked_until=row.blocked_until and row.blocked_until - back,
            throttled_reported_at=row.throttled_reported_at and row.throttled_reported_at - back,
        )


@pytest.mark.django_db
def test_a_username_spray_leaves_no_rows_a_window_later(cast, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(15):  # within the address's twenty free failures
        sign_in(behind_proxy(ATTACKER), f"user{n}", "guess")
    assert SigninThrottle.objects.count() == 16  # one per name, and the address's own

    assert signin_throttles_purge() == 0  # the window has not passed: every counter still counts
    _a_window_passes(settings)
    assert signin_throttles_purge() == 16

    assert not SigninThrottle.objects.exists()
    # The record of the attempts is untouched, and the address starts afresh, as it would have
    # once its failures were a window old.
    assert system_events("approvals.signin.failed").count() == 15
    sign_in(behind_proxy(ATTACKER), "alice", "guess")
    assert SigninThrottle.objects.get(username="alice").failures == 1


@pytest.mark.django_db
def test_the_purge_keeps_a_running_delay_and_reports_refusals_before_forgetting_them(
    cast, settings
):
    settings.SIGNIN_MAX_FAILURES = 1
    client = Client()
    sign_in(client, "alice", "guess")
    for _ in range(5):
        sign_in(client, "alice", "guess")  # refused: one event for the first, four unreported
    # Her failures and last report are old now, but her delay has not run out.
    SigninThrottle.objects.update(
        last_failure_at=timezone.now() - timedelta(hours=1),
        throttled_reported_at=timezone.now() - timedelta(hours=1),
    )
    assert signin_throttles_purge() == 1  # only the address's row, which holds no delay
    assert SigninThrottle.objects.get(username="alice").throttled_unreported == 4

    _a_window_passes(settings)
    assert signin_throttles_purge() == 1

    counts = [event.detail["count"] for event in system_events("approvals.signin.throttled")]
    assert sorted(counts) == [1, 4]
    assert not SigninThrottle.objects.exists()
