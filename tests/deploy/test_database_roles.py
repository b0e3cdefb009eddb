"""Least privilege on a real PostgreSQL server, from the side of someone holding the portal's
runtime DATABASE_URL (the web, worker or beat container's).

A throwaway database gets the two roles from deploy/postgres/roles.sql (as the compose init
script creates them), is migrated as the owner, granted with `grant_runtime_role`; then the
runtime role tries to rewrite the record, and runs the portal's normal flow.
"""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import psycopg
import pytest
from django.db import connection

from tests.processes import ROOT, child_env

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Roles:
    database: str
    owner: str
    runtime: str
    owner_url: str
    runtime_url: str


def _server() -> tuple[str, int, str]:
    if connection.vendor != "postgresql":
        pytest.fail("this test needs the PostgreSQL server (BREAKGLASS_TEST_DATABASE_URL)")
    settings = connection.settings_dict
    return settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432), settings["USER"]


def _superuser_sql(host: str, port: int, user: str, sql: str) -> None:
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as c:
        c.execute(sql)


def manage(roles_url: str, *args: str) -> subprocess.CompletedProcess:
    """A management command as a portal process connected with this URL."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env({"DATABASE_URL": roles_url}),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def roles(django_db_blocker) -> Iterator[Roles]:
    with django_db_blocker.unblock():
        host, port, superuser = _server()
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    names = Roles(
        database=f"bg_roles_{suffix}",
        owner=f"bg_owner_{suffix}",
        runtime=f"bg_app_{suffix}",
        owner_url="",
        runtime_url="",
    )
    owner_password, runtime_password = secrets.token_hex(16), secrets.token_hex(16)
    _superuser_sql(host, port, superuser, f'CREATE DATABASE "{names.database}"')
    try:
        subprocess.run(
            [
                "psql",
                "--no-psqlrc",
                "-q",
                f"postgresql://{superuser}@{host}:{port}/{names.database}",
                "-v",
                f"owner_role={names.owner}",
                "-v",
                f"owner_password={owner_password}",
                "-v",
                f"runtime_role={names.runtime}",
                "-v",
                f"runtime_password={runtime_password}",
                "-v",
                f"database={names.database}",
                "-f",
                str(ROOT / "deploy/postgres/roles.sql"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        base = f"{host}:{port}/{names.database}"
        yield Roles(
            database=names.database,
            owner=names.owner,
            runtime=names.runtime,
            owner_url=f"postgres://{names.owner}:{owner_password}@{base}",
            runtime_url=f"postgres://{names.runtime}:{runtime_password}@{base}",
        )
    finally:
        _superuser_sql(
            host, port, superuser, f'DROP DATABASE IF EXISTS "{names.database}" WITH (FORCE)'
        )
        for role in (names.runtime, names.owner):
            _superuser_sql(host, port, superuser, f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def migrated(roles: Roles) -> Roles:
    migrate = manage(roles.owner_url, "migrate", "--no-input")
    assert migrate.returncode == 0, migrate.stderr
    grant = manage(roles.owner_url, "grant_runtime_role", roles.runtime)
    assert grant.returncode == 0, grant.stderr
    assert "the timeline read and append only" in grant.stdout
    # The portal's normal flow, as the runtime role: accounts, a profile, a request, a signature.
    flow = manage(roles.runtime_url, "shell", "-c", FLOW)
    assert flow.returncode == 0, flow.stderr
    assert "flow ok" in flow.stdout
    return roles


FLOW = """
from django.contrib.auth.models import Group
from approvals.models import AccessProfile, SealedTOTPDevice, TimelineEvent
from approvals.services.identity import user_provision
from approvals.services.requests import request_approve, request_open
group = Group.objects.create(name="approvers")
profile = AccessProfile.objects.create(
    slug="prod", name="Prod", account_id="123456789012", region="eu-west-1",
    role_arn="arn:aws:iam::123456789012:role/breakglass-admin",
    principal_arn="arn:aws:iam::123456789012:user/breakglass-principal", approver_group=group,
)
rita = user_provision(username="rita").user
alice = user_provision(username="alice", approver=True).user
access_request = request_open(
    profile_slug="prod", requester=rita, ticket="INC-1",
    justification="Failover is stuck; need the role to promote the replica.", duration_minutes=30,
)
code = SealedTOTPDevice.objects.get(user=alice).unused_code()
request_approve(access_request_id=access_request.pk, approver=alice, otp_code=code)
assert TimelineEvent.objects.filter(code="approvals.admin.group_member_added").exists()
print("flow ok")
"""


def _as_runtime(roles: Roles, sql: str) -> psycopg.Error:
    """Run one statement as the runtime role; the error it is refused with."""
    url = urlparse(roles.runtime_url)
    with (
        psycopg.connect(
            host=url.hostname,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=roles.database,
            autocommit=True,
        ) as runtime,
        pytest.raises(psycopg.Error) as refused,
    ):
        runtime.execute(sql)
    return refused.value


REWRITES = [
    "UPDATE approvals_timelineevent SET detail = '{}'",
    "UPDATE approvals_timelineevent SET actor_name = 'someone-else'",
    "DELETE FROM approvals_timelineevent",
    "TRUNCATE approvals_timelineevent",
    "TRUNCATE approvals_timelineevent, approvals_timelinehead CASCADE",
    "ALTER TABLE approvals_timelineevent DISABLE TRIGGER approvals_timeline_append_only",
    "ALTER TABLE approvals_timelineevent DISABLE TRIGGER ALL",
    "DROP TRIGGER approvals_timeline_append_only ON approvals_timelineevent",
    "DROP TABLE approvals_timelineevent CASCADE",
    "DELETE FROM approvals_timelinehead",
    "TRUNCATE approvals_timelinehead",
    "ALTER TABLE approvals_timelinehead DISABLE TRIGGER ALL",
    "SET session_replication_role = replica",
    "CREATE TABLE approvals_decoy (id int)",
]


@pytest.mark.parametrize("sql", REWRITES)
def test_the_runtime_role_is_refused_every_rewrite_of_the_record(migrated: Roles, sql: str):
    refused = _as_runtime(migrated, sql)

    assert refused.sqlstate == "42501", (
        sql,
        refused.sqlstate,
        str(refused),
    )  # insufficient_privilege


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE approvals_timelinehead SET sequence = sequence - 1",
        "UPDATE approvals_timelinehead SET chain = 'request:elsewhere'",
        "UPDATE approvals_timelinehead SET hash = repeat('0', 64)",
    ],
)
def test_the_runtime_role_cannot_rewind_or_rename_a_chain_head(migrated: Roles, sql: str):
    refused = _as_runtime(migrated, sql)

    assert refused.sqlstate == "42501"
    assert "only advances" in str(refused)


def test_the_record_is_intact_and_verifiable_as_the_runtime_role(migrated: Roles):
    verify = manage(migrated.runtime_url, "verify_timeline")
    check = manage(migrated.runtime_url, "grant_runtime_role", migrated.runtime, "--check")

    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert check.returncode == 0, check.stderr


def test_the_grant_refuses_a_role_that_could_rewrite_the_record(migrated: Roles):
    as_owner = manage(migrated.owner_url, "grant_runtime_role", migrated.owner)
    superuser = manage(migrated.owner_url, "grant_runtime_role", connection.settings_dict["USER"])

    assert as_owner.returncode != 0
    assert "the owner the migrations run as" in as_owner.stderr
    assert superuser.returncode != 0
    assert "superuser" in superuser.stderr
