from datetime import timedelta

from django.utils import timezone

from approvals.models import Drill


def test_the_drills_page_needs_a_verified_session(client, cast):
    client.force_login(cast.alice)

    response = client.get("/drills/")

    assert response.status_code == 302


def test_it_says_how_to_run_the_first_drill(as_user, cast):
    response = as_user(cast.alice).get("/drills/")

    assert response.status_code == 200
    assert "No drills yet" in response.content.decode()


def test_it_lists_drills_newest_first_with_their_timings_and_a_trend(as_user, cast):
    start = timezone.now() - timedelta(days=60)
    for month, (access, revoke) in enumerate([(400, 900), (350, 800)]):
        Drill.objects.create(
            profile=cast.profile,
            started_at=start + timedelta(days=30 * month),
            finished_at=start + timedelta(days=30 * month, minutes=2),
            passed=True,
            time_to_approve_ms=40_000,
            time_to_access_ms=access,
            time_to_revoke_ms=revoke,
            time_to_refused_ms=revoke + 50,
        )
    Drill.objects.create(
        profile=cast.profile,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        failure="REVOCATION NOT CONFIRMED by AWS within 120 s",
    )

    page = as_user(cast.auditor).get("/drills/").content.decode()

    assert page.index("REVOCATION NOT CONFIRMED") < page.index("350 ms") < page.index("400 ms")
    assert "<polyline" in page
    assert "passed" in page


def test_the_admin_needs_an_otp_verified_session(client, as_user, cast):
    cast.alice.is_staff = cast.alice.is_superuser = True
    cast.alice.save()
    client.force_login(cast.alice)

    assert client.get("/admin/").status_code == 302
    assert as_user(cast.alice).get("/admin/").status_code == 200
