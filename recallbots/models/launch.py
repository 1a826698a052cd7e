"""A bot's launch at Recall: its claim (LAUNCH_LEASE) and the transitions that store what a try
learnt. Part of the Bot model (a mixin of it): like the rest of recallbots.models, the only
writers of the launch fields."""

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import IntegrityError, models, transaction
from django.db.models import Case, DurationField, ExpressionWrapper, F, Value, When
from django.db.models.functions import Now

from brokerproject import claims

if TYPE_CHECKING:
    from .bot import Bot

# A queued launch's claim: launch_next_attempt_at is moved `seconds` ahead (by the database's
# clock) and launch_claim_holder names the worker; only that worker requeues, fails or ends the
# launch. A Recall bot stored for the launch ends every claim on it.
LAUNCH_LEASE = claims.Lease(field="launch_next_attempt_at", holder_field="launch_claim_holder")


class BotLaunch:
    """The launch's transitions of Bot (which see): the queued launch, its tries, its Recall bot."""

    if TYPE_CHECKING:  # what this part of Bot uses of the rest of it (recallbots.models.bot)
        Status: ClassVar[type["Bot.Status"]]
        objects: models.Manager["Bot"]
        pk: int
        status: str
        recall_id: str | None
        connection_id: int | None

        def save(self, *args: Any, **kwargs: Any) -> None: ...
        def refresh_from_db(self, *args: Any, **kwargs: Any) -> None: ...
        def _take_status(self, *, code: str | None, sub_code: str, at: datetime) -> None: ...
        def _ended_unsent(self, *, status: str, at: datetime) -> None: ...

    @property
    def launch_outcome_unknown(self) -> bool:
        return self.launch_ambiguous_at is not None

    def mark_launch_ambiguous(self) -> None:
        """A create failed ambiguously just now (the database's clock: the lag window is measured
        on one clock whichever worker looks next)."""
        type(self).objects.filter(pk=self.pk).update(launch_ambiguous_at=Now())
        self.launch_ambiguous_at = type(self).objects.values_list("launch_ambiguous_at", flat=True).get(pk=self.pk)

    def list_lag_left(self, *, lag: timedelta) -> float:
        """Seconds until Recall's bot list, still without this launch's bot, can be believed (0:
        it can): measured from the last ambiguous create, on the database's clock."""
        if self.launch_ambiguous_at is None:
            return 0.0
        left = (
            type(self)
            .objects.filter(pk=self.pk)
            .annotate(left=ExpressionWrapper(F("launch_ambiguous_at") + lag - Now(), output_field=DurationField()))
            .values_list("left", flat=True)
            .get()
        )
        return max(0.0, left.total_seconds()) if left is not None else 0.0

    def queue(self, *, payload: str, error: str = "", retry_in: float | None = None) -> bool:
        """The launch waits as `queued`, its create-bot body stored, until a worker creates it at
        Recall (after `retry_in` seconds; at once when None). False over a bot that holds a Recall
        id already (its own status webhook adopted it during an ambiguous create). Read back."""
        # By the database's clock, as the claim that takes the try up reads it (claims.Lease).
        next_at = Now() + timedelta(seconds=retry_in) if retry_in is not None else None
        queued = (
            type(self)
            .objects.filter(pk=self.pk, recall_id__isnull=True)
            .update(
                status=self.Status.QUEUED,
                last_error=error[:500],
                queued_payload=payload,
                launch_next_attempt_at=next_at,
            )
        )
        self.refresh_from_db()
        return bool(queued)

    def queue_retry(self, *, holder: uuid.UUID, retry_in: float, error: str) -> bool:
        """A queued launch's try failed retryably: the next one in `retry_in` seconds, and the claim
        is freed. False (nothing written) when `holder` no longer holds the claim."""
        rows = type(self).objects.filter(pk=self.pk, status=self.Status.QUEUED)
        retry = {"launch_next_attempt_at": Now() + timedelta(seconds=retry_in), "last_error": error[:500]}
        return bool(claims.release(rows, LAUNCH_LEASE, holder=holder, **retry))

    def launch_failed(self, *, error: str, holder: uuid.UUID | None = None) -> bool:
        """The launch failed for good. A queued launch's try passes its `holder`: False (nothing
        written) when the claim was taken over, as the newer holder's outcome stands."""
        failed = {"status": self.Status.LAUNCH_FAILED, "last_error": error[:500], "queued_payload": ""}
        if holder is None:
            type(self).objects.filter(pk=self.pk).update(**failed)
        elif not claims.release(type(self).objects.filter(pk=self.pk), LAUNCH_LEASE, holder=holder, **failed):
            return False
        for name, value in failed.items():
            setattr(self, name, value)
        return True

    def launched(
        self, *, recall_id: str, changes: list[tuple[str | None, str, datetime]], holder: uuid.UUID | None = None
    ) -> "Bot | None":
        """Recall created the launch's bot: the launch holds it, with the statuses (code, sub_code,
        at) its create answer carried. When the launch holds another Recall bot already (the first
        one's webhook was adopted while this create ran), this one is a duplicate: recorded,
        linked and returned, and the launch keeps the id the first bot's webhooks are found by.
        With a queued launch's `holder`, see take_recall_id."""
        if not self.take_recall_id(recall_id, holder=holder):
            return self.record_duplicate(recall_id=recall_id)
        for code, sub_code, at in changes:
            self._take_status(code=code, sub_code=sub_code, at=at)
        self.save(update_fields=["status", "sub_code", "status_updated_at"])
        return None

    def take_recall_id(self, recall_id: str, *, holder: uuid.UUID | None = None) -> bool:
        """The launch holds this Recall bot from now on; False when it already holds another one
        (a webhook adopted the first bot, or a worker stored its own): the caller records a
        duplicate instead of overwriting the id the first bot's webhooks are found by.

        The Recall bot exists whoever holds the claim, so a queued launch's try (`holder` given)
        takes it while the launch is still undecided (queued: a newer holder still at Recall then
        finds its own bot a duplicate), even after its claim was taken over; over a launch a newer
        holder already ended (launch_failed, meeting_ended) it is a duplicate. Taking it ends any
        claim: a holder still at Recall can then neither fail nor requeue the launch."""
        rows = type(self).objects.filter(pk=self.pk, recall_id__isnull=True)
        if holder is not None:
            rows = rows.filter(status=self.Status.QUEUED)
        taken = rows.update(
            recall_id=recall_id[:64],
            queued_payload="",
            last_error="",
            launch_next_attempt_at=None,
            launch_claim_holder=None,
            status=Case(When(status=self.Status.QUEUED, then=Value(self.Status.CREATED)), default=F("status")),
        )
        self.refresh_from_db(
            fields=[
                *("recall_id", "queued_payload", "last_error", "launch_next_attempt_at", "launch_claim_holder"),
                *("status", "sub_code", "status_updated_at"),
            ]
        )
        return bool(taken) or self.recall_id == recall_id[:64]

    def record_duplicate(self, *, recall_id: str) -> "Bot":
        """A second Recall bot for this launch: its own row (its status is tracked), linked here.
        Idempotent on the Recall id (a redelivered webhook, two at once)."""
        fields = {
            name: getattr(self, name)
            for name in (
                *("user_id", "connection_id", "meeting_url", "meeting_id", "meeting_passcode", "token_kinds"),
                *("bot_name", "join_at", "metadata", "start", "presence"),
            )
        }
        try:
            with transaction.atomic():
                return type(self).objects.create(
                    **fields, recall_id=recall_id[:64], duplicate_of_id=self.pk, status=self.Status.CREATED
                )
        except IntegrityError:
            return type(self).objects.get(recall_id=recall_id[:64])

    def end_queued_unsent(self, *, status: str, at, holder: uuid.UUID) -> bool:
        """A queued launch that Recall has never been asked for (no ambiguous create) ends without
        a bot; False if it is no longer such a launch, or `holder` no longer holds its claim."""
        rows = type(self).objects.filter(
            pk=self.pk, status=self.Status.QUEUED, recall_id__isnull=True, launch_ambiguous_at__isnull=True
        )
        unsent = {"status": status, "status_updated_at": at, "queued_payload": ""}
        ended = claims.release(rows, LAUNCH_LEASE, holder=holder, **unsent)
        if ended:
            self._ended_unsent(status=status, at=at)
        return bool(ended)
