"""On PostgreSQL, event_seq is drawn from a sequence by the INSERT itself, as in the
backend: a transaction takes its number when it writes and may commit after later
numbers — the late commits the bronze exporter must not lose."""

from django.db import migrations

FORWARD = """
CREATE SEQUENCE IF NOT EXISTS stop_events_event_seq_seq OWNED BY stop_events.event_seq;
ALTER TABLE stop_events ALTER COLUMN event_seq SET DEFAULT nextval('stop_events_event_seq_seq');
"""
BACKWARD = """
ALTER TABLE stop_events ALTER COLUMN event_seq DROP DEFAULT;
DROP SEQUENCE IF EXISTS stop_events_event_seq_seq;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("api", "0001_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
