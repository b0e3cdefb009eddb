from django.core.management.base import BaseCommand, CommandError

from approvals.errors import PortalError
from approvals.services.drills import DrillFailed, DrillPlan, drill_run


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

    def handle(self, *args, **options) -> None:
        plan = DrillPlan(
            profile_slug=options["profile"],
            duration_minutes=options["duration_minutes"],
            auto_sign=options["auto_sign"],
            approvers=tuple(a for a in options["approvers"].split(",") if a),
            step_timeout_seconds=options["step_timeout"],
        )
        try:
            drill = drill_run(plan=plan, progress=lambda line: self.stdout.write(f"  … {line}"))
        except DrillFailed as exc:
            raise CommandError(f"DRILL FAILED: {exc}") from None
        except PortalError as exc:
            raise CommandError(exc.message) from None
        rows = [
            ("time to approve", drill.time_to_approve_ms),
            ("time to access", drill.time_to_access_ms),
            ("time to revoke", drill.time_to_revoke_ms),
            ("time until AWS refused the credentials", drill.time_to_refused_ms),
        ]
        self.stdout.write(
            f"\nDrill passed on profile {drill.profile.slug} (request {drill.request_id})"
        )
        for label, value in rows:
            shown = "—" if value is None else f"{value / 1000:8.2f} s"
            self.stdout.write(f"  {label:40} {shown}")
