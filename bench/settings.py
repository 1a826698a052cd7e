"""The broker's own settings plus one floor endpoint, for benchmarks only (never deployed)."""

from brokerproject.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
