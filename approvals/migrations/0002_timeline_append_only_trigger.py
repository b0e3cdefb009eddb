"""On PostgreSQL the database itself refuses to change or remove timeline events.

The one UPDATE allowed is Django nulling `actor_id` when a user is deleted: the copied
`actor_name` is what the hash covers, so the record stays verifiable.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION approvals_timeline_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'timeline events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER approvals_timeline_append_only
    BEFORE UPDATE OR DELETE ON approvals_timelineevent
    FOR EACH ROW EXECUTE FUNCTION approvals_timeline_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS approvals_timeline_append_only ON approvals_timelineevent;
DROP FUNCTION IF EXISTS approvals_timeline_append_only();
"""


def create_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
