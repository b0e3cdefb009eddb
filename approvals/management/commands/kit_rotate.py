from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals.errors import PortalError
from approvals.services.offline_kit import kit_rotate, kit_rotation_finish
from awsaccess.errors import AwsError
from awsaccess.runtime import provisioner_connection


class Command(BaseCommand):
    help = (
        "Replace an offline kit (after an opening, a drill or a lost share): a new key, MFA "
        "device and shares; the old key and device deleted, so the old shares open nothing; the "
        "old kit's live sessions revoked. Run again on a kit whose rotation did not finish to "
        "finish it (no further kit is issued). Prints the new kit id last."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("kit")
        parser.add_argument(
            "--out", help="directory for the new kit and shares (not needed to finish a rotation)"
        )
        parser.add_argument("--custodians", help="NAME,NAME,…: change them (default: the same)")
        parser.add_argument("--threshold", type=int, help="default: the same")
        parser.add_argument(
            "--credentials-file",
            help="JSON {access_key_id, secret_access_key} of the provisioning identity",
        )

    def handle(self, *args, **options) -> None:
        try:
            connection = provisioner_connection(options["credentials_file"])
            finished = kit_rotation_finish(kit_id=options["kit"], connection=connection)
            if finished is not None:
                self.stdout.write(
                    f"kit {options['kit']}'s interrupted rotation finished: its key is deleted, "
                    f"its shares open nothing. No new kit was issued: kit {finished.id}'s files "
                    f"are where the first run wrote them (kit-{finished.id}.json)"
                )
                self.stdout.write(finished.id)
                return
            if not options["out"]:
                raise CommandError("--out is required: the directory for the new kit and shares")
            custodians = None
            if options["custodians"]:
                custodians = [n.strip() for n in options["custodians"].split(",") if n.strip()]
            files = kit_rotate(
                kit_id=options["kit"],
                out_dir=Path(options["out"]),
                connection=connection,
                custodians=custodians,
                threshold=options["threshold"],
            )
        except PortalError as exc:
            raise CommandError(exc.message) from None
        except AwsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"kit {options['kit']} rotated: its key is deleted, its shares open nothing"
        )
        self.stdout.write(f"kit        {files.kit_file}  (fingerprint {files.kit.fingerprint})")
        for custodian, path in files.share_files.items():
            self.stdout.write(f"share      {path}  (give to {custodian} only)")
        self.stdout.write(files.kit.id)
