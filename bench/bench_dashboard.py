"""Benchmark: the approver dashboard with 10,000 requests and 100,000 timeline events.

Creates a throwaway PostgreSQL database (bench_dashboard), bulk-inserts the data, then renders
the dashboard N times through the full Django stack (middleware, session, OTP, templates) with
the test client, against a trivial page of the same stack (the account page) in the same run.
Usage: python bench/bench_dashboard.py [N]   (BENCH_PG_URL overrides the server URL)
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
DB_NAME = "bench_dashboard"
REQUESTS = 10_000
EVENTS = 100_000

os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"{SERVER}/{DB_NAME}",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "BREAKGLASS_VAR_DIR": tempfile.mkdtemp(prefix="bench-dashboard-"),
    }
)


def database_recreate() -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def database_drop() -> None:
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def populate():
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from approvals.models import (
        AccessProfile,
        AccessRequest,
        Approval,
        SecurityAlarm,
        Status,
        TimelineEvent,
    )
    from approvals.services.identity import totp_device_set

    rng = random.Random(7)
    approvers = Group.objects.create(name=settings.APPROVERS_GROUP)
    alice = User.objects.create_user("alice")
    alice.groups.add(approvers)
    totp_device_set(user=alice)
    requesters = User.objects.bulk_create([User(username=f"user{n}") for n in range(50)])
    profiles = [
        AccessProfile.objects.create(
            slug=f"profile-{n}",
            name=f"Profile {n}",
            account_id="123456789012",
            region="eu-west-1",
            role_arn=f"arn:aws:iam::123456789012:role/breakglass-{n}",
            principal_arn="arn:aws:iam::123456789012:user/breakglass-principal",
            approver_group=approvers,
        )
        for n in range(5)
    ]
    now = timezone.now()
    finished = [Status.REVOKED, Status.REJECTED, Status.CANCELLED, Status.TIMED_OUT, Status.FAILED]
    rows = []
    for n in range(REQUESTS):
        created = now - timedelta(minutes=REQUESTS - n)
        if n >= REQUESTS - 40:
            status = Status.PENDING
            created = now - timedelta(minutes=REQUESTS - n) / 1000
        elif n >= REQUESTS - 60:
            status = Status.ACTIVE
        else:
            status = rng.choice(finished)
        requester = rng.choice(requesters)
        rows.append(
            AccessRequest(
                id=uuid.uuid4(),
                profile=rng.choice(profiles),
                requester=requester,
                requester_name=requester.username,
                ticket=f"INC-{n}",
                justification="Benchmark request " * 5,
                duration_minutes=30,
                status=status,
                created_at=created,
                approval_deadline=created + timedelta(minutes=30),
                expires_at=now + timedelta(minutes=20) if status == Status.ACTIVE else None,
            )
        )
    AccessRequest.objects.bulk_create(rows, batch_size=2000)
    Approval.objects.bulk_create(
        [
            Approval(
                request=r,
                approver=requesters[0],
                approver_name=requesters[0].username,
                decision="approve",
                device_id="x",
                content_digest="0" * 64,
                created_at=now,
            )
            for r in rows[-40:-20]
        ]
    )
    per_request = EVENTS // REQUESTS
    events = []
    for r in rows:
        for seq in range(1, per_request + 1):
            events.append(
                TimelineEvent(
                    chain=f"request:{r.id}",
                    sequence=seq,
                    request=r,
                    created_at=r.created_at + timedelta(seconds=seq),
                    actor_name=r.requester_name,
                    code="approvals.request.opened",
                    detail={"bench": seq},
                    prev_hash="0" * 64,
                    hash="0" * 64,
                )
            )
        if len(events) >= 10_000:
            TimelineEvent.objects.bulk_create(events)
            events = []
    TimelineEvent.objects.bulk_create(events)
    SecurityAlarm.objects.bulk_create(
        [
            SecurityAlarm(
                kind="unexplained_use", title=f"alarm {n}", dedup_key=f"a{n}", opened_at=now
            )
            for n in range(3)
        ]
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return alice


def timed(client, path: str, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    database_recreate()
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client
        from django_otp import DEVICE_ID_SESSION_KEY

        from approvals.models import SealedTOTPDevice, TimelineEvent

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        alice = populate()
        print(
            f"populated {REQUESTS} requests, {TimelineEvent.objects.count()} events "
            f"in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
        client = Client()
        client.force_login(alice)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = SealedTOTPDevice.objects.get(user=alice).persistent_id
        session.save()

        dashboard, page_2, trivial = "/", "/?page=2&status=revoked", "/account/"
        for path in (dashboard, page_2, trivial):
            timed(client, path, 10)  # warm up
        queries: list[tuple[float, str]] = []

        def record(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                queries.append(((time.perf_counter() - started) * 1000, sql))

        with connection.execute_wrapper(record):
            client.get(dashboard)
        for ms, sql in sorted(queries, reverse=True)[:5]:
            print(f"  {ms:6.1f} ms  {sql[:150]}", file=sys.stderr)
        ours, filtered, reference = [], [], []
        for _ in range(n):  # interleaved so drift hits both equally
            ours += timed(client, dashboard, 1)
            filtered += timed(client, page_2, 1)
            reference += timed(client, trivial, 1)
        print(
            f"dashboard p50 {statistics.median(ours):.1f} ms, p95 {p95(ours):.1f} ms; "
            f"filtered page 2 p95 {p95(filtered):.1f} ms; "
            f"account page p95 {p95(reference):.1f} ms; {len(queries)} queries",
            file=sys.stderr,
        )
        print(
            json.dumps(
                {
                    "figure": "dashboard p95 render, 10k requests / 100k events (PostgreSQL)",
                    "ours_ms": round(p95(ours), 1),
                    "reference_ms": round(p95(reference), 1),
                    "ratio": round(p95(ours) / p95(reference), 2),
                    "filtered_page_p95_ms": round(p95(filtered), 1),
                    "queries": len(queries),
                    "renders": n,
                    "target_ms": 100,
                }
            )
        )
    finally:
        database_drop()


if __name__ == "__main__":
    main()
