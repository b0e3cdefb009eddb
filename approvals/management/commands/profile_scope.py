import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals.errors import RequestInvalid
from approvals.services.scopes import scope_set


class Command(BaseCommand):
    help = (
        "Create or replace a named scope of an access profile: an inline session policy "
        "(--policy-file) and/or managed policies (--managed-arn), optionally the default. "
        "Requests waiting for signatures that name it must be signed again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("profile", help="the access profile's slug")
        parser.add_argument("name", help="the scope's name, e.g. read-only")
        parser.add_argument("--policy-file", help="a JSON IAM policy document ('-' for stdin)")
        parser.add_argument(
            "--managed-arn", action="append", default=[], help="a managed policy ARN (repeatable)"
        )
        parser.add_argument(
            "--network", action="append", default=[], help="a CIDR, within the profile's"
        )
        parser.add_argument("--description", default="")
        parser.add_argument("--default", action="store_true", help="make it the default scope")

    def handle(self, *args, **options) -> None:
        policy_text = None
        if options["policy_file"] == "-":
            policy_text = sys.stdin.read()
        elif options["policy_file"]:
            try:
                policy_text = Path(options["policy_file"]).read_text()
            except OSError as error:
                raise CommandError(f"cannot read {options['policy_file']}: {error}") from None
        try:
            scope = scope_set(
                profile_slug=options["profile"],
                name=options["name"],
                policy_text=policy_text,
                managed_policy_arns=options["managed_arn"],
                networks=options["network"],
                description=options["description"],
                make_default=options["default"],
            )
        except RequestInvalid as exc:
            messages = [m for field in exc.fields.values() for m in field]
            raise CommandError(f"{exc.message} " + "; ".join(messages)) from None
        default = " (default)" if scope.is_default else ""
        self.stdout.write(
            f"scope {scope.name}{default} of {options['profile']}: revision {scope.revision}"
        )
