# Issue 18: the offline kit.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("approvals", "0015_scopes_extensions")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="accessrequest",
            name="kind",
            field=models.CharField(
                choices=[("portal", "Portal"), ("offline", "Offline")],
                default="portal",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="drill",
            name="path",
            field=models.CharField(
                choices=[("portal", "Portal"), ("offline", "Offline")],
                default="portal",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="OfflineKit",
            fields=[
                ("id", models.CharField(max_length=16, primary_key=True, serialize=False)),
                ("fingerprint", models.CharField(max_length=32)),
                ("principal_arn", models.CharField(max_length=600)),
                (
                    "access_key_id",
                    models.CharField(help_text="Not secret; names the key.", max_length=128),
                ),
                (
                    "mfa_serial",
                    models.CharField(help_text="Not secret; names the MFA device.", max_length=600),
                ),
                ("record_public_key", models.CharField(help_text="Ed25519, hex.", max_length=64)),
                (
                    "custodians",
                    models.JSONField(help_text="The custodians' names, one share each."),
                ),
                ("threshold", models.PositiveSmallIntegerField()),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("sealed", "Sealed"),
                            ("exposed", "Exposed"),
                            ("rotated", "Rotated"),
                        ],
                        default="sealed",
                        max_length=16,
                    ),
                ),
                ("created_at", models.DateTimeField()),
                ("exposed_at", models.DateTimeField(blank=True, null=True)),
                ("rotated_at", models.DateTimeField(blank=True, null=True)),
                (
                    "profile",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="offline_kits",
                        to="approvals.accessprofile",
                    ),
                ),
                (
                    "replaced_by",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="replaces",
                        to="approvals.offlinekit",
                    ),
                ),
            ],
            options={"ordering": ["-created_at"]},
        ),
        migrations.AddConstraint(
            model_name="offlinekit",
            constraint=models.CheckConstraint(
                condition=models.Q(("threshold__gte", 2)), name="kit_requires_two_custodians"
            ),
        ),
        migrations.AddField(
            model_name="drill",
            name="kit",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="drills",
                to="approvals.offlinekit",
            ),
        ),
        migrations.CreateModel(
            name="OfflineOpening",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("source_identity", models.CharField(max_length=64, unique=True)),
                (
                    "seen_at",
                    models.DateTimeField(help_text="When AWS (or the record) first showed it."),
                ),
                (
                    "record",
                    models.JSONField(blank=True, help_text="The signed local record.", null=True),
                ),
                ("record_imported_at", models.DateTimeField(blank=True, null=True)),
                (
                    "kit",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="openings",
                        to="approvals.offlinekit",
                    ),
                ),
                (
                    "request",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="offline_opening",
                        to="approvals.accessrequest",
                    ),
                ),
            ],
            options={"ordering": ["-seen_at"]},
        ),
    ]
