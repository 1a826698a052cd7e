"""What every benchmark starts from: its own empty PostgreSQL database and an encryption key made
for the run. Nothing is created at import: each script calls `database()` from main()."""

import os

from cryptography.fernet import Fernet

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def encryption_key() -> str:
    """A key for this run only (the benchmark's rows are thrown away with its database)."""
    return os.environ.get("BENCH_FIELD_ENCRYPTION_KEY") or Fernet.generate_key().decode()


def database(name: str) -> str:
    """Drop and create `name` on the machine's PostgreSQL; returns its DATABASE_URL."""
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"
