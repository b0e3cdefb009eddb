from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from approvals.services.checkpoints import anchor_location
from awsaccess import anchor, runtime
from awsaccess.errors import AwsError


class Command(BaseCommand):
    help = (
        "Create the checkpoint anchor bucket (BREAKGLASS_ANCHOR_BUCKET) with Object Lock and a "
        "COMPLIANCE default retention, or --check that it has them (non-zero exit if not)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="change nothing; report")
        parser.add_argument("--credentials-file", help="the provisioner's keys (JSON)")
        parser.add_argument("--retention-days", type=int, default=settings.ANCHOR_RETENTION_DAYS)

    def handle(self, *args, **options) -> None:
        location = anchor_location()
        if location is None:
            raise CommandError("BREAKGLASS_ANCHOR_BUCKET is not set")
        connection = runtime.provisioner_connection(options["credentials_file"])
        try:
            if not options["check"]:
                for line in anchor.anchor_bucket_ensure(
                    connection, location, retention_days=options["retention_days"]
                ):
                    self.stdout.write(line)
            problems = anchor.anchor_bucket_problems(connection, location)
        except AwsError as exc:
            raise CommandError(str(exc)) from None
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write(f"anchor bucket {location.bucket}: Object Lock, COMPLIANCE retention")
