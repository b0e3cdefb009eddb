"""Everything periodic is in one schedule, and beat only ever names tasks the worker runs."""

from django.conf import settings

from portal.celery import app


def test_every_periodic_job_is_scheduled_and_names_a_task_the_worker_has():
    app.loader.import_default_modules()
    schedule = settings.CELERY_BEAT_SCHEDULE

    assert {entry["task"] for entry in schedule.values()} == {
        "approvals.sweep",
        "approvals.worker_heartbeat",
        "approvals.watch_poll",
        "approvals.guard_check",
        "approvals.activity_backstop",
        "approvals.timeline_checkpoint",
        "approvals.signin_throttles_purge",
    }
    assert all(entry["task"] in app.tasks for entry in schedule.values())
    assert schedule["sweep"]["schedule"] == float(settings.SWEEP_INTERVAL_SECONDS)
    assert schedule["guard-check"]["schedule"] == float(settings.GUARD_INTERVAL_SECONDS)
    assert schedule["activity-backstop"]["schedule"] == float(settings.ACTIVITY_BACKSTOP_SECONDS)
    assert schedule["timeline-checkpoint"]["schedule"] == float(
        settings.CHECKPOINT_INTERVAL_SECONDS
    )
    assert schedule["signin-throttles-purge"]["schedule"] == (
        settings.SIGNIN_FAILURE_WINDOW_MINUTES * 60.0
    )
