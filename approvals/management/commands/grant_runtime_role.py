from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from approvals.models import TimelineEvent, TimelineHead
from portal.database_roles import (
    RecordTables,
    RoleRefused,
    runtime_role_excess,
    runtime_role_grant,
)

RECORD = RecordTables(
    append_only=(TimelineEvent._meta.db_table,),
    advancing=(TimelineHead._meta.db_table,),
)


class Command(BaseCommand):
    help = (
        "Run as the tables' owner after `migrate`: give the portal's runtime role (web, worker, "
        "beat) the application's tables, but the timeline only to read and append. PostgreSQL."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("role", help="the runtime role, e.g. breakglass_app")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--check", action="store_true", help="only report what the role may do to the record"
        )

    def handle(self, *args, **options) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            raise CommandError("database roles are a PostgreSQL set-up; this database is not one")
        role = options["role"]
        if not options["check"]:
            try:
                runtime_role_grant(connection, role, RECORD)
            except RoleRefused as refused:
                raise CommandError(str(refused)) from None
        excess = runtime_role_excess(connection, role, RECORD)
        if excess:
            raise CommandError(f"{role} may still rewrite the record: {', '.join(excess)}")
        self.stdout.write(
            f"{role}: application tables read-write; the timeline read and append only"
        )
