from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals.errors import PortalError
from approvals.services.offline_kit import kit_create
from awsaccess.errors import AwsError
from awsaccess.runtime import provisioner_connection


class Command(BaseCommand):
    help = (
        "Create a profile's offline kit for when the portal is down: the offline user (with its "
        "MFA-only, offline- source identity trust), its key and MFA device sealed into "
        "kit-<id>.json, and one share per custodian. Prints the kit id last."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("profile")
        parser.add_argument("--custodians", required=True, help="NAME,NAME,NAME: one share each")
        parser.add_argument("--threshold", type=int, default=2, help="shares that open the kit")
        parser.add_argument("--out", required=True, help="directory for the kit and the shares")
        parser.add_argument(
            "--credentials-file",
            help="JSON {access_key_id, secret_access_key} of the provisioning identity "
            "(default: $BREAKGLASS_AWS_PROVISIONER_CREDENTIALS_FILE, else the boto3 chain)",
        )

    def handle(self, *args, **options) -> None:
        custodians = [name.strip() for name in options["custodians"].split(",") if name.strip()]
        try:
            files = kit_create(
                profile_slug=options["profile"],
                custodians=custodians,
                threshold=options["threshold"],
                out_dir=Path(options["out"]),
                connection=provisioner_connection(options["credentials_file"]),
            )
        except PortalError as exc:
            raise CommandError(exc.message) from None
        except AwsError as exc:
            raise CommandError(str(exc)) from None
        kit = files.kit
        self.stdout.write(f"kit        {files.kit_file}  (fingerprint {kit.fingerprint})")
        for custodian, path in files.share_files.items():
            self.stdout.write(f"share      {path}  (give to {custodian} only)")
        self.stdout.write(
            f"Any {kit.threshold} of {len(kit.custodians)} shares open it with "
            f"`breakglass kit open {files.kit_file.name} --share … --share …`."
        )
        self.stdout.write(kit.id)
