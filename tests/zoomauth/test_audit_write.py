"""The audit writer stores every field of each row as given (one COPY on PostgreSQL), and the
hourly counts the overview reads."""

import pytest

from zoomauth.audit import audit_write
from zoomauth.models import CallbackHourStat, CallbackLog

pytestmark = pytest.mark.django_db


def test_every_field_of_each_row_is_stored_as_given(connection):
    grant_less = CallbackLog(
        connection=connection,
        kind=CallbackLog.Kind.ACCESS_TOKEN,
        meeting_id="",
        status_code=200,
        outcome="served",
        latency_ms=12,
        zoom_calls=0,
        signature_checked=True,
        client_address="2001:db8::1",
    )
    anonymous = CallbackLog(
        connection=None,
        kind=CallbackLog.Kind.OBF,
        meeting_id="85000000000",
        status_code=401,
        outcome='bad secret: it\'s "quoted", tab\there, back\\slash',
        latency_ms=4_000_000,
        zoom_calls=3,
        signature_checked=False,
        client_address=None,
    )
    audit_write([grant_less, anonymous])
    stored = {row.outcome: row for row in CallbackLog.objects.all()}
    assert len(stored) == 2
    for given in (grant_less, anonymous):
        row = stored[given.outcome]
        for field in ("connection_id", "kind", "meeting_id", "grant_id", "status_code", "latency_ms", "zoom_calls"):
            assert getattr(row, field) == getattr(given, field), field
        assert row.signature_checked is given.signature_checked
        assert row.client_address == given.client_address
        assert row.created_at == given.created_at  # set by the writer, the same in memory and stored
    assert sum(CallbackHourStat.objects.values_list("answered", flat=True)) == 2
    assert sum(CallbackHourStat.objects.values_list("answered_200", flat=True)) == 1
