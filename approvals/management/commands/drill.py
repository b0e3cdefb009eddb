from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from approvals.errors import PortalError
from approvals.models import Drill
from approvals.services.drills import DrillFailed, DrillPlan, drill_run
from approvals.services.offline_drill import OfflineDrillPlan, offline_drill_run


class Command(BaseCommand):
    help = (
        "Run the break-glass procedure end to end against the profile's AWS, timed: open a drill "
        "request, wait for two signatures, prove access, revoke, prove AWS refuses."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("profile")
        parser.add_argument("--approvers", default="", help="A,B: who is expected to sign")
        parser.add_argument("--duration-minutes", type=int, default=1)
        parser.add_argument(
            "--auto-sign",
            action="store_true",
            help="sandbox only: sign with drill approvers the command creates",
        )
        parser.add_argument("--step-timeout", type=float, default=120.0, help="seconds per step")
        offline = parser.add_argument_group("the offline kit's path (issue 18)")
        offline.add_argument(
            "--offline", action="store_true", help="drill the offline kit instead of the portal"
        )
        offline.add_argument("--shares", default="", help="FILE,FILE: the custodians' shares")
        offline.add_argument("--kit", help="the kit file (default: beside the first share)")
        offline.add_argument(
            "--out",
            help="a new directory for the rotated kit and its shares "
            "(default: rotated-<time> beside the first share)",
        )
        offline.add_argument("--credentials-file", help="the provisioner identity, to rotate")

    def _offline(self, options: dict) -> Drill:
        shares = tuple(Path(name) for name in options["shares"].split(",") if name)
        if not shares:
            raise CommandError("--offline needs --shares FILE,FILE")
        # The drill rotates the kit: its new shares go where nothing would be overwritten.
        out_dir = Path(
            options["out"] or shares[0].parent / f"rotated-{timezone.now():%Y%m%dT%H%M%SZ}"
        )
        plan = OfflineDrillPlan(
            profile_slug=options["profile"],
            share_files=shares,
            out_dir=out_dir,
            kit_file=Path(options["kit"]) if options["kit"] else None,
            credentials_file=options["credentials_file"],
            step_timeout_seconds=options["step_timeout"],
        )
        return offline_drill_run(plan=plan, progress=lambda line: self.stdout.write(f"  … {line}"))

    def handle(self, *args, **options) -> None:
        plan = DrillPlan(
            profile_slug=options["profile"],
            duration_minutes=options["duration_minutes"],
            auto_sign=options["auto_sign"],
            approvers=tuple(a for a in options["approvers"].split(",") if a),
            step_timeout_seconds=options["step_timeout"],
        )
        try:
            if options["offline"]:
                drill = self._offline(options)
            else:
                drill = drill_run(plan=plan, progress=lambda line: self.stdout.write(f"  … {line}"))
        except DrillFailed as exc:
            raise CommandError(f"DRILL FAILED: {exc}") from None
        except PortalError as exc:
            raise CommandError(exc.message) from None
        if options["offline"]:
            rows = [
                ("time to access (offline kit)", drill.time_to_access_ms),
                ("time to rotate the kit", drill.time_to_revoke_ms),
                ("time until AWS refused the opened session", drill.time_to_refused_ms),
            ]
        else:
            rows = self._online_rows(drill)
        self.stdout.write(
            f"\nDrill passed on profile {drill.profile.slug} (request {drill.request_id})"
        )
        for label, value in rows:
            shown = "—" if value is None else f"{value / 1000:8.2f} s"
            self.stdout.write(f"  {label:40} {shown}")

    def _online_rows(self, drill: Drill) -> list[tuple[str, int | None]]:
        return [
            ("time to approve", drill.time_to_approve_ms),
            ("time to access", drill.time_to_access_ms),
            ("time to revoke", drill.time_to_revoke_ms),
            ("time until AWS refused the credentials", drill.time_to_refused_ms),
        ]
