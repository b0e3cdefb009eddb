from django.core.management.base import BaseCommand, CommandError

from approvals.models import AccessProfile
from awsaccess.errors import AwsError
from awsaccess.provisioning import profile_provision
from awsaccess.runtime import provisioner_connection


class Command(BaseCommand):
    help = (
        "Create what a profile needs in AWS (role trust, watch rule and queue), report drift in "
        "what exists. Runs with the provisioner identity, not the portal's broker."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--check", action="store_true", help="change nothing; report only")
        parser.add_argument("--fix-drift", action="store_true", help="rewrite what has drifted")
        parser.add_argument(
            "--credentials-file",
            help="JSON {access_key_id, secret_access_key} of the provisioning identity "
            "(default: $BREAKGLASS_AWS_PROVISIONER_CREDENTIALS_FILE, else the boto3 chain)",
        )

    def handle(self, *args, **options) -> None:
        profile = AccessProfile.objects.filter(slug=options["slug"]).first()
        if profile is None:
            raise CommandError(f"unknown access profile {options['slug']!r}")
        try:
            report = profile_provision(
                provisioner_connection(options["credentials_file"]),
                profile.aws_target(),
                check_only=options["check"],
                fix_drift=options["fix_drift"],
            )
        except AwsError as exc:
            raise CommandError(str(exc)) from None
        for finding in report.findings:
            self.stdout.write(f"{finding.status:8} {finding.resource} {finding.detail}".rstrip())
        if report.has_drift:
            raise CommandError(f"profile {profile.slug} has drift or missing resources (see above)")
        self.stdout.write(f"profile {profile.slug} is provisioned as expected")
