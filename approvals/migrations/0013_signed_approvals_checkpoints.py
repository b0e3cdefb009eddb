# Issue 14: signing key, signed approvals, signed timeline checkpoints.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("approvals", "0012_personal_token_expiry")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="approval",
            name="time_step",
            field=models.BigIntegerField(
                blank=True, help_text="The TOTP time step the code verified in.", null=True
            ),
        ),
        migrations.AddField(
            model_name="approval",
            name="signature_key_id",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="approval",
            name="signature",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.CreateModel(
            name="TimelineCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sequence", models.PositiveBigIntegerField(unique=True)),
                ("created_at", models.DateTimeField()),
                ("header", models.JSONField()),
                (
                    "digest",
                    models.CharField(help_text="SHA-256 of the signed header.", max_length=64),
                ),
                ("key_id", models.CharField(max_length=32)),
                ("signature", models.CharField(max_length=128)),
                ("heads", models.JSONField(blank=True, null=True)),
                ("anchor_key", models.CharField(blank=True, max_length=300)),
                ("anchor_version", models.CharField(blank=True, max_length=200)),
                ("anchored_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"ordering": ["sequence"]},
        ),
    ]
