"""PostgreSQL tells every web process when a connection's row or one of its bot URLs changes
(zoomauth/rowcache.py): NOTIFY broker_callback_rows with the connection's id on every UPDATE or
DELETE, whoever makes it. Nothing on other databases (they do not hold the row cache)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION broker_notify_callback_row() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'zoomauth_callbackgrant' THEN
        PERFORM pg_notify('broker_callback_rows', OLD.connection_id::text);
    ELSE
        PERFORM pg_notify('broker_callback_rows', OLD.id::text);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS broker_callback_row_changed ON zoomauth_zoomconnection;
CREATE TRIGGER broker_callback_row_changed AFTER UPDATE OR DELETE ON zoomauth_zoomconnection
    FOR EACH ROW EXECUTE FUNCTION broker_notify_callback_row();
DROP TRIGGER IF EXISTS broker_callback_row_changed ON zoomauth_callbackgrant;
CREATE TRIGGER broker_callback_row_changed AFTER UPDATE OR DELETE ON zoomauth_callbackgrant
    FOR EACH ROW EXECUTE FUNCTION broker_notify_callback_row();
"""

DROP = """
DROP TRIGGER IF EXISTS broker_callback_row_changed ON zoomauth_zoomconnection;
DROP TRIGGER IF EXISTS broker_callback_row_changed ON zoomauth_callbackgrant;
DROP FUNCTION IF EXISTS broker_notify_callback_row();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("zoomauth", "0009_callback_hour_stats"),
    ]

    operations = [migrations.RunPython(create, drop)]
