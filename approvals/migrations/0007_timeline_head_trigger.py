"""The database advances each chain's head when an event is inserted.

One round trip less per timeline event than doing it from Python, on both databases, and the
head (what truncation is checked against) is kept by the database itself.
"""

from django.db import migrations

POSTGRES_CREATE = """
CREATE OR REPLACE FUNCTION approvals_timeline_head_advance() RETURNS trigger AS $$
BEGIN
    UPDATE approvals_timelinehead SET sequence = NEW.sequence, hash = NEW.hash
        WHERE chain = NEW.chain;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER approvals_timeline_head_advance
    AFTER INSERT ON approvals_timelineevent
    FOR EACH ROW EXECUTE FUNCTION approvals_timeline_head_advance();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS approvals_timeline_head_advance ON approvals_timelineevent;
DROP FUNCTION IF EXISTS approvals_timeline_head_advance();
"""
SQLITE_CREATE = """
CREATE TRIGGER approvals_timeline_head_advance AFTER INSERT ON approvals_timelineevent
BEGIN
    UPDATE approvals_timelinehead SET sequence = NEW.sequence, hash = NEW.hash
        WHERE chain = NEW.chain;
END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS approvals_timeline_head_advance;"


def create_trigger(apps, schema_editor) -> None:
    sql = {"postgresql": POSTGRES_CREATE, "sqlite": SQLITE_CREATE}[schema_editor.connection.vendor]
    schema_editor.execute(sql, params=None)


def drop_trigger(apps, schema_editor) -> None:
    sql = {"postgresql": POSTGRES_DROP, "sqlite": SQLITE_DROP}[schema_editor.connection.vendor]
    schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0006_drills_and_created_index")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
