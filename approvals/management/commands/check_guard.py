from django.core.management.base import BaseCommand, CommandError

from approvals.services.guard import guard_check


class Command(BaseCommand):
    help = (
        "Compare each profile's live watch and what AWS holds (trust policy, role and principal "
        "policies by content, keys, rules and every target field, queue policy, trails) with what "
        "provisioning and the database expect; raise an alarm and exit non-zero on drift."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--profile", action="append", help="only this profile (repeatable)")

    def handle(self, *args, **options) -> None:
        results = guard_check(profile_slugs=options["profile"])
        failing = 0
        for result in results:
            slug = result.profile.slug
            if result.intact:
                self.stdout.write(f"{slug}: intact")
                continue
            failing += 1
            if result.error:
                self.stdout.write(f"{slug}: could not check: {result.error}")
            for drift in result.drifts:
                self.stdout.write(f"{slug}: DRIFT {drift.resource}: {drift.change}")
            if result.alarm_id:
                self.stdout.write(f"{slug}: alarm {result.alarm_id}")
        if failing:
            raise CommandError(f"{failing} of {len(results)} profiles are not intact")
        self.stdout.write(f"all {len(results)} profiles intact")
