# Issue 14: audited administration, person identifier, two administrators for the rules, and a
# timeline head that only moves forward (so the portal's runtime role may advance it, never
# rewind, rename or remove it: see `grant_runtime_role`).
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

HEAD_FORWARD_ONLY = """
CREATE OR REPLACE FUNCTION approvals_timeline_head_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'timeline heads are never removed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The append's lock (an upsert) rewrites the row unchanged.
    IF NEW.chain = OLD.chain AND NEW.sequence = OLD.sequence AND NEW.hash = OLD.hash THEN
        RETURN NEW;
    END IF;
    -- The head advance (migration 0007) moves it to the event just appended.
    IF NEW.chain = OLD.chain AND NEW.sequence = OLD.sequence + 1 AND EXISTS (
        SELECT 1 FROM approvals_timelineevent e
        WHERE e.chain = NEW.chain AND e.sequence = NEW.sequence AND e.hash = NEW.hash
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a timeline head only advances to the event appended after it'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER approvals_timeline_head_forward_only
    BEFORE UPDATE OR DELETE ON approvals_timelinehead
    FOR EACH ROW EXECUTE FUNCTION approvals_timeline_head_forward_only();
"""
HEAD_FORWARD_ONLY_DROP = """
DROP TRIGGER IF EXISTS approvals_timeline_head_forward_only ON approvals_timelinehead;
DROP FUNCTION IF EXISTS approvals_timeline_head_forward_only();
"""


def create_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(HEAD_FORWARD_ONLY, params=None)


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(HEAD_FORWARD_ONLY_DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0013_signed_approvals_checkpoints"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PersonIdentity",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "identifier",
                    models.CharField(
                        db_index=True,
                        help_text=(
                            "The person behind this account, e.g. their e-mail address or SSO "
                            "subject. It names one person: accounts carrying the same identifier "
                            "are that one person, and never count as two approvers (or as the "
                            "requester and an approver)."
                        ),
                        max_length=254,
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="person_identity",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "person identifier"},
        ),
        migrations.CreateModel(
            name="ProfileChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending a second administrator"),
                            ("confirmed", "Confirmed and applied"),
                            ("withdrawn", "Withdrawn"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("old_required_approvals", models.PositiveSmallIntegerField()),
                ("new_required_approvals", models.PositiveSmallIntegerField()),
                ("proposed_by_name", models.CharField(max_length=150)),
                ("proposed_at", models.DateTimeField()),
                ("decided_by_name", models.CharField(blank=True, max_length=150)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "new_approver_group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="auth.group",
                    ),
                ),
                (
                    "old_approver_group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="auth.group",
                    ),
                ),
                (
                    "profile",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="changes",
                        to="approvals.accessprofile",
                    ),
                ),
                (
                    "proposed_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-proposed_at"]},
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
