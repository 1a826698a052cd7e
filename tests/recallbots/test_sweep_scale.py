"""Beat's sweeps read the bots they concern, not every bot: 10 000 bots waiting for their users
(issue #24) cost a tick nothing. Counted with PostgreSQL's own per-transaction table statistics."""

from datetime import timedelta

import pytest
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from recallbots import waiting
from recallbots.models import Bot
from recallbots.services import bots_queued_due
from tests.rows import waiting_bots

WAITING = 3000


def bot_rows_read(fn) -> tuple[object, int]:
    """fn()'s result and the rows of recallbots_bot it read (sequential and index fetches)."""
    query = "SELECT coalesce(sum(seq_tup_read + idx_tup_fetch), 0) FROM pg_stat_xact_user_tables WHERE relname = %s"
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(query, [Bot._meta.db_table])
        before = cursor.fetchone()[0]
        result = fn()
        cursor.execute(query, [Bot._meta.db_table])
        return result, cursor.fetchone()[0] - before


@pytest.fixture
def many_waiting(connection):
    waiting_bots(connection, WAITING, first_meeting=86000000000)
    overdue = Bot.objects.create(
        user=connection.user,
        connection=connection,
        meeting_url="https://zoom.us/j/85999999999",
        meeting_id="85999999999",
        status=Bot.Status.QUEUED,
        launch_next_attempt_at=timezone.now() - timedelta(minutes=10),
    )
    with db.cursor() as cursor:
        cursor.execute(f"ANALYZE {Bot._meta.db_table}")
    return overdue


@pytest.mark.django_db(transaction=True)
def test_the_queued_launch_sweep_reads_only_queued_bots(many_waiting):
    due, rows = bot_rows_read(bots_queued_due)
    assert due == [many_waiting.pk]
    assert rows <= 10, f"the sweep read {rows} bot rows for one queued bot among {WAITING} waiting"


@pytest.mark.django_db(transaction=True)
def test_the_wait_expiry_sweep_reads_only_bots_whose_wait_is_over(many_waiting):
    ended, rows = bot_rows_read(waiting.bots_waited_out)
    assert ended == 0
    assert rows <= 10, f"the sweep read {rows} bot rows with none due among {WAITING} waiting"
