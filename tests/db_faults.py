"""A write the database refuses mid-transaction, as a crash between a remote answer and the commit."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def crash_on(table: str, operation: str, *, when: str = "TRUE") -> Iterator[None]:
    """While the block runs, an `operation` (INSERT, UPDATE) on `table` for which the SQL condition
    `when` holds (NEW and OLD are the row) raises 'simulated crash' inside PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION simulated_crash() RETURNS trigger AS $$ BEGIN "
            f"IF {when} THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER simulated_crash BEFORE {operation} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION simulated_crash()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER simulated_crash ON {table}; DROP FUNCTION simulated_crash()")
