# Issue 12: guard content checks, real-time tampering alarms.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("approvals", "0016_offline_kit")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="accessprofile",
            name="role_policy_arns",
            field=models.TextField(
                blank=True,
                help_text=(
                    "The managed policies the role should hold, one ARN per line: the guard "
                    "alarms on any other attached, or any of these detached. Empty: not compared."
                ),
            ),
        ),
    ]
