"""The environment of a process a test starts: production-like (DEBUG off, secrets set, a host),
or development on the embedded SQLite default."""

from pathlib import Path

SECRET_KEY = "a-test-secret-key-that-is-long-enough-0123456789-abcdefghijklmnop"
FIELD_ENCRYPTION_KEY = "Z2k1Y3VnZ3R4c2JmZ2l0ZHd2Y2V1b2p4bWZ6a3p2b2E="


def production_env(*, host: str, database_url: str, redis_url: str = "") -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "brokerproject.settings",
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": FIELD_ENCRYPTION_KEY,
        "ALLOWED_HOSTS": host,
        "PUBLIC_BASE_URL": f"https://{host}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """Development settings on a SQLite file of the test's own, no Redis (the embedded default)."""
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'broker.sqlite3'}",
        "REDIS_URL": "",
        "DJANGO_SETTINGS_MODULE": "brokerproject.settings",
        "DEBUG": "true",
    }
