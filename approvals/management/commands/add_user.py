import os

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from approvals.errors import RequestInvalid
from approvals.services.api_access import personal_token_create
from approvals.services.identity import user_provision
from approvals.services.persons import person_identifier_set

PASSWORD_ENV = "BREAKGLASS_USER_PASSWORD"  # noqa: S105 (a variable name, not a password)


class Command(BaseCommand):
    help = (
        "Create or update a user with a confirmed TOTP device. The password can come from "
        f"${PASSWORD_ENV} to keep it out of shell history."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help=f"sign-in password (or set ${PASSWORD_ENV})")
        parser.add_argument("--approver", action="store_true", help="add to the approvers group")
        parser.add_argument(
            "--person",
            help="the person behind the account (e-mail or SSO subject); accounts with the same "
            "person identifier never count as two approvers",
        )
        parser.add_argument("--totp-secret", help="base32 TOTP seed; a random one when omitted")
        parser.add_argument(
            "--api-token", action="store_true", help="print a new personal API token last"
        )

    def handle(self, *args, **options) -> None:
        try:
            with transaction.atomic():
                provisioned = user_provision(
                    username=options["username"],
                    email=options["email"],
                    password=options["password"] or os.environ.get(PASSWORD_ENV),
                    approver=options["approver"],
                    totp_secret=options["totp_secret"],
                )
                if options["person"] is not None:
                    person_identifier_set(user=provisioned.user, identifier=options["person"])
        except RequestInvalid as exc:
            messages = [m for field in exc.fields.values() for m in field]
            raise CommandError("; ".join(messages) or exc.message) from None
        user = provisioned.user
        verb = "created" if provisioned.created else "updated"
        self.stdout.write(f"{verb} user {user.get_username()}")
        if provisioned.device is not None and not options["totp_secret"]:
            # A seed we generated: this is the only time anyone sees it.
            self.stdout.write(
                f"TOTP device (add to an authenticator app): {provisioned.device.config_url}"
            )
        if options["api_token"]:
            self.stdout.write(personal_token_create(user=user, name="add_user"))
