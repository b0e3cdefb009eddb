"""Least privilege in PostgreSQL: the portal's runtime role (web, worker, beat) against the
owner that migrations run as.

The runtime role reads and writes the application's tables, but on the record (the timeline)
it may only read and append: no UPDATE, DELETE or TRUNCATE, and since it owns nothing it can
neither drop nor disable a trigger. The timeline's heads it may advance, which a trigger limits
to the event just appended (migration approvals 0014).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
APPLICATION_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
# What no runtime role may hold on an append-only table.
FORBIDDEN_ON_RECORD = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")


class RoleRefused(Exception):
    """The role cannot be the runtime role (it could rewrite the record)."""


@dataclass(frozen=True)
class RecordTables:
    append_only: Sequence[str]  # SELECT and INSERT only
    advancing: Sequence[str]  # also UPDATE, which their triggers limit to moving forward


def _quoted(connection: BaseDatabaseWrapper, role: str) -> str:
    if not ROLE_NAME.match(role):
        raise RoleRefused(f"{role!r} is not a plain PostgreSQL role name (a-z, 0-9, _)")
    return connection.ops.quote_name(role)


def runtime_role_refusal(connection: BaseDatabaseWrapper, role: str) -> str:
    """Why `role` must not be the runtime role ("" when it may): it must exist, log in, and hold
    no power over the tables (superuser, role creation, the owner or a member of it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolbypassrls, rolcanlogin, "
            "pg_has_role(%s, current_user, 'MEMBER'), current_user "
            "FROM pg_roles WHERE rolname = %s",
            [role, role],
        )
        row = cursor.fetchone()
    if row is None:
        return f"there is no role {role}: create it first (deploy/postgres/roles.sql)"
    superuser, createrole, bypassrls, can_login, member_of_owner, owner = row
    if superuser or createrole or bypassrls:
        return (
            f"{role} is a superuser or may create roles or bypass row security: it could "
            "disable the timeline's triggers"
        )
    if member_of_owner:
        return (
            f"{role} is (or is a member of) {owner}, the owner the migrations run as: it could "
            "alter the tables and their triggers"
        )
    if not can_login:
        return f"{role} cannot log in"
    return ""


def runtime_role_grant(connection: BaseDatabaseWrapper, role: str, record: RecordTables) -> None:
    """Run as the tables' owner after every `migrate`: the application's tables (and, through
    default privileges, tables later migrations create) read-write; the record append-only."""
    refusal = runtime_role_refusal(connection, role)
    if refusal:
        raise RoleRefused(refusal)
    name = _quoted(connection, role)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = quote(cursor.fetchone()[0])
        statements = [
            f"GRANT USAGE ON SCHEMA {schema} TO {name}",
            f"GRANT {APPLICATION_PRIVILEGES} ON ALL TABLES IN SCHEMA {schema} TO {name}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {name}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
            f"GRANT {APPLICATION_PRIVILEGES} ON TABLES TO {name}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
            f"GRANT USAGE, SELECT ON SEQUENCES TO {name}",
            # Which migrations ran is the owner's business.
            f"REVOKE ALL ON django_migrations FROM {name}",
            f"GRANT SELECT ON django_migrations TO {name}",
        ]
        for table in record.append_only:
            statements += [
                f"REVOKE ALL ON {quote(table)} FROM {name}, PUBLIC",
                f"GRANT SELECT, INSERT ON {quote(table)} TO {name}",
            ]
        for table in record.advancing:
            statements += [
                f"REVOKE ALL ON {quote(table)} FROM {name}, PUBLIC",
                f"GRANT SELECT, INSERT, UPDATE ON {quote(table)} TO {name}",
            ]
        for statement in statements:
            cursor.execute(statement)


def runtime_role_excess(
    connection: BaseDatabaseWrapper, role: str, record: RecordTables
) -> list[str]:
    """What the role may do to the record that it must not (empty: nothing)."""
    excess = []
    with connection.cursor() as cursor:
        for table in (*record.append_only, *record.advancing):
            for privilege in FORBIDDEN_ON_RECORD:
                if privilege == "UPDATE" and table in record.advancing:
                    continue
                cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [role, table, privilege])
                if cursor.fetchone()[0]:
                    excess.append(f"{privilege} on {table}")
            cursor.execute(
                "SELECT pg_has_role(%s, tableowner, 'MEMBER') FROM pg_tables "
                "WHERE tablename = %s AND schemaname = current_schema()",
                [role, table],
            )
            owns = cursor.fetchone()
            if owns and owns[0]:
                excess.append(f"ownership of {table} (it could disable its triggers)")
    return excess
