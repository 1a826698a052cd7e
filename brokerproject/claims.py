"""One way to claim work across processes: a lease on a row, never a row lock.

A claim is one conditional UPDATE: it stamps the lease column and a holder id (the fence), only
where the row is free or its lease has run out, both by the DATABASE's clock (a host whose clock
runs ahead cannot see a live claim as expired). No lock outlives that statement, so the holder may
then call Zoom, Recall or the customer's backend for as long as it takes. What it learns is stored
with `release`, or read under `held` in a short transaction: both touch the row only while the
claim is still the holder's, so a claim taken over because the call outlived it keeps the newer
holder's outcome. Works alike on PostgreSQL and SQLite.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now


@dataclass(frozen=True)
class Lease:
    """Where a model keeps its claim: `field`, a datetime, and `holder_field`, a nullable UUID.

    By default `field` is when the claim ends (`next_attempt_at`: claimed until now + seconds,
    free once that has passed). With `from_start`, it is when the claim began
    (`refresh_started_at`: free once older than the seconds given to `claim`)."""

    field: str
    holder_field: str
    from_start: bool = False

    def free(self, seconds: float) -> Q:
        if self.from_start:
            expired = Q(**{f"{self.field}__lt": Now() - timedelta(seconds=seconds)})
        else:
            expired = Q(**{f"{self.field}__lte": Now()})
        return Q(**{f"{self.field}__isnull": True}) | expired

    def stamp(self, holder: uuid.UUID, seconds: float) -> dict[str, Any]:
        at = Now() if self.from_start else Now() + timedelta(seconds=seconds)
        return {self.field: at, self.holder_field: holder}


def new_holder() -> uuid.UUID:
    return uuid.uuid4()


def claim(rows: QuerySet, lease: Lease, *, holder: uuid.UUID, seconds: float, **changes: Any) -> int:
    """Claim the rows of `rows` that are free for `seconds`; `changes` are written with the claim
    (e.g. `launch_attempts=F("launch_attempts") + 1`). Returns how many were claimed: 0 means
    someone else holds them, or none matched."""
    return rows.filter(lease.free(seconds)).update(**lease.stamp(holder, seconds), **changes)


def claim_due(
    rows: QuerySet, lease: Lease, *, holder: uuid.UUID, seconds: float, limit: int, **changes: Any
) -> list[Any]:
    """Claim up to `limit` free rows of `rows`, in its order; returns their primary keys. Rows
    another transaction has locked are skipped, not waited for (PostgreSQL; SQLite has one writer)."""
    with transaction.atomic():
        free = rows.filter(lease.free(seconds)).select_for_update(skip_locked=True, of=("self",))
        pks = list(free.values_list("pk", flat=True)[:limit])
        by_pk = rows.model._default_manager.filter(pk__in=pks)
        claim(by_pk, lease, holder=holder, seconds=seconds, **changes)
        taken = set(held(by_pk, lease, holder=holder).values_list("pk", flat=True))
    return [pk for pk in pks if pk in taken]


def held(rows: QuerySet, lease: Lease, *, holder: uuid.UUID) -> QuerySet:
    """The rows of `rows` still claimed by `holder` (to lock briefly, never across a remote call)."""
    return rows.filter(**{lease.holder_field: holder})


def release(rows: QuerySet, lease: Lease, *, holder: uuid.UUID, **changes: Any) -> int:
    """Store `changes` (the holder's outcome) and free the claim, only where it is still `holder`'s.
    Returns how many rows; 0 means the claim was taken over and nothing was written. A nullable
    lease column is cleared unless `changes` sets it; a required one (a next-attempt time) is
    left as `changes` says."""
    freed: dict[str, Any] = {lease.holder_field: None}
    field = rows.model._meta.get_field(lease.field)
    if isinstance(field, models.Field) and field.null:
        freed[lease.field] = None
    return held(rows, lease, holder=holder).update(**{**freed, **changes})
