import pytest

from approvals.services.liveness import heartbeat

pytestmark = pytest.mark.django_db


def _reasons(client):
    response = client.get("/healthz")
    return response.status_code, response.json()


def test_it_is_unhealthy_until_worker_sweeper_and_watcher_have_been_seen(client):
    status, body = _reasons(client)

    assert status == 503
    assert body["status"] == "failing"
    assert body["reasons"] == ["worker never seen", "sweeper never seen", "watcher never seen"]
    components = {c["name"]: c for c in body["components"]}
    assert components["database"]["ok"] and components["broker"]["ok"]


def test_it_is_healthy_with_fresh_heartbeats_and_reports_their_ages(client):
    for component in ("worker", "sweeper", "watcher"):
        heartbeat(component=component)

    status, body = _reasons(client)

    assert status == 200, body
    assert body["reasons"] == []
    ages = {c["name"]: c["age_seconds"] for c in body["components"]}
    assert all(0 <= ages[c] < 5 for c in ("worker", "sweeper", "watcher"))


def test_a_stale_heartbeat_is_reported_with_its_age(client, settings):
    for component in ("worker", "sweeper", "watcher"):
        heartbeat(component=component)
    settings.HEALTH_STALE_SECONDS = 0

    status, body = _reasons(client)

    assert status == 503
    assert body["reasons"][0].startswith("worker last seen")


def test_a_dead_broker_is_reported(client, settings):
    for component in ("worker", "sweeper", "watcher"):
        heartbeat(component=component)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

    status, body = _reasons(client)

    assert status == 503
    assert body["reasons"][0].startswith("broker unreachable")


def test_a_watcher_that_stopped_polling_makes_it_unhealthy(client, settings):
    for component in ("worker", "sweeper", "watcher"):
        heartbeat(component=component)
    settings.WATCH_STALE_SECONDS = 0

    status, body = _reasons(client)

    assert status == 503
    assert body["reasons"][0].startswith("watcher last seen")
