# Issue 13: activity surfaces, LookupEvents backstop.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("approvals", "0017_guard_tampering")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.CreateModel(
            name="ActivityLookupCursor",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("region", models.CharField(max_length=32)),
                ("covered_from", models.DateTimeField(help_text="The first look began here.")),
                ("complete_until", models.DateTimeField()),
                (
                    "window_end",
                    models.DateTimeField(
                        blank=True,
                        help_text="End of the window being read, while unfinished.",
                        null=True,
                    ),
                ),
                (
                    "next_token",
                    models.TextField(blank=True, help_text="Where the unfinished window resumes."),
                ),
                ("looked_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.CharField(blank=True, max_length=300)),
                (
                    "profile",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="cursors",
                        to="approvals.accessprofile",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("profile", "region"), name="one_cursor_per_region"
                    )
                ],
            },
        ),
    ]
