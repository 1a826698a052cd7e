"""The Bot model: a launch and the Recall bot it became, with its states. Its launch transitions
are in launch.py, its history in history.py (mixins of Bot, in this package)."""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from brokerproject import claims
from brokerproject.crypto import StrictEncryptedTextField
from zoomauth.models import CallbackLog, ZoomConnection

from .history import BotHistory, BotStatusChange
from .launch import LAUNCH_LEASE, BotLaunch


class BotQuerySet(models.QuerySet["Bot"]):
    def waiting(self):
        return self.filter(status=Bot.Status.WAITING_FOR_USER)

    def waited_out(self, *, now=None):
        """Waiting bots whose wait is over (served by the partial index on wait_until)."""
        return self.waiting().filter(wait_until__lte=now or timezone.now())

    def claim_launch(self, *, bot_id: int, holder: uuid.UUID, seconds: float) -> bool:
        """Claim a queued launch whose next try is due, for `seconds` (LAUNCH_LEASE: no row lock
        held while Recall answers): the task's own retry and beat's catch-up never run one launch
        at once, and only `holder` stores what its try learnt."""
        rows = self.filter(pk=bot_id, status=Bot.Status.QUEUED, recall_id__isnull=True)
        attempt = {"launch_attempts": F("launch_attempts") + 1}
        return bool(claims.claim(rows, LAUNCH_LEASE, holder=holder, seconds=seconds, **attempt))


class Bot(BotLaunch, BotHistory, models.Model):
    """A Recall bot launched by the broker, with its token URLs and status history."""

    class TokenKind(models.TextChoices):
        """What the API and the forms accept. The callback URL of each kind is spelled as
        zoomauth's CallbackLog.Kind: `callback_kind` is the one bridge between the two."""

        JOIN_TOKEN = "join_token", "Join token for local recording"
        ZAK = "zak", "ZAK (signed-in bot)"
        OBF = "obf", "OBF (on behalf of the user)"

        @property
        def callback_kind(self) -> str:
            return {
                "join_token": CallbackLog.Kind.JOIN_TOKEN,
                "zak": CallbackLog.Kind.ZAK,
                "obf": CallbackLog.Kind.OBF,
            }[self.value]

    class Status(models.TextChoices):
        """The broker's own states (queued, created, launch_failed) and Recall's status codes.
        Recall's codes are not a closed set (its docs say so): the field declares these as its
        choices, yet keeps any code Recall sends (nothing on the webhook path validates it, and
        the admin and the API show an unknown code as it is); these are the ones the broker
        knows and acts on."""

        QUEUED = "queued", "Queued (Recall was throttling)"
        WAITING_FOR_USER = "waiting_for_user", "Waiting for its user to join the meeting"
        USER_NEVER_JOINED = "user_never_joined", "Its user never joined (no bot was sent)"
        MEETING_ENDED = "meeting_ended", "The meeting ended before its user joined (no bot was sent)"
        CREATED = "created", "Created at Recall"
        LAUNCH_FAILED = "launch_failed", "Launch failed"
        JOINING_CALL = "joining_call", "Joining the call"
        IN_WAITING_ROOM = "in_waiting_room", "In the waiting room"
        IN_CALL_NOT_RECORDING = "in_call_not_recording", "In the call, not recording"
        IN_CALL_RECORDING = "in_call_recording", "In the call, recording"
        CALL_ENDED = "call_ended", "Call ended"
        DONE = "done", "Done"
        FATAL = "fatal", "Fatal error"
        ANALYSIS_DONE = "analysis_done", "Analysis done"

        @classmethod
        def final(cls) -> tuple[str, ...]:
            """States a bot never leaves: its token URLs end, its page stops refreshing."""
            return (
                cls.DONE,
                cls.FATAL,
                cls.LAUNCH_FAILED,
                cls.CALL_ENDED,
                cls.ANALYSIS_DONE,
                cls.USER_NEVER_JOINED,
                cls.MEETING_ENDED,
            )

    class Start(models.TextChoices):
        NOW = "now", "Now (or at join_at)"
        WHEN_USER_JOINS = "when_user_joins", "When its user (or an OBF candidate) joins the meeting"

    class Presence(models.TextChoices):
        VISIBLE = "visible", "The broker sees the meeting's participants"
        NOT_VISIBLE = "not_visible", "The broker cannot see the meeting (launched at once)"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    recall_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bots")
    connection = models.ForeignKey(
        ZoomConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="bots"
    )
    meeting_url = models.TextField()
    meeting_id = models.CharField(max_length=20, blank=True)
    meeting_passcode = models.CharField(max_length=100, blank=True)
    token_kinds = models.JSONField(default=list)
    bot_name = models.CharField(max_length=100, default="Recall Bot")
    join_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Written only by the transitions below. Any Recall code is kept, declared or not (see Status).
    status = models.CharField(max_length=50, choices=Status.choices, default=Status.CREATED)
    sub_code = models.CharField(max_length=100, blank=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Recall throttled the launch: the create-bot body waits here (encrypted: its token URLs
    # carry the connection's secret) until a worker creates the bot.
    queued_payload = StrictEncryptedTextField(blank=True)
    # A queued launch's next try; a worker claims the launch by moving it ahead (a lease), so
    # beat's catch-up and the task's own retry never create it twice.
    launch_next_attempt_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Who holds the claim on the queued launch (LAUNCH_LEASE): the fence its outcome is stored by.
    launch_claim_holder = models.UUIDField(null=True, blank=True, editable=False)
    launch_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    # The last POST /api/v1/bot/ that failed ambiguously (timeout, dropped connection, 502/504),
    # by the database's clock: Recall may hold the bot already. No second POST until Recall's
    # list has shown nothing for RECALL_BOT_LIST_LAG_SECONDS since then, or the bot's own status
    # webhook names the launch.
    launch_ambiguous_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A second Recall bot for one launch (its status webhook named a launch that already held
    # another Recall id): kept as its own row, linked to the launch, never dropped.
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates", editable=False
    )
    # "when_user_joins": created at Recall only once its user (or a candidate) is in the meeting,
    # while the broker sees the meeting (presence), until wait_until.
    start = models.CharField(max_length=20, choices=Start.choices, default=Start.NOW)
    presence = models.CharField(max_length=20, choices=Presence.choices, blank=True)
    wait_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Connections (ids, in order) whose OBF token may authorize the bot beside its own.
    obf_candidates = models.JSONField(default=list, blank=True)
    # Hand-off: when the user whose OBF the bot carries leaves (Zoom removes the bot) and another
    # of the launch's authorizers is still in, a successor bot is sent on their behalf.
    handoff = models.BooleanField(default=False)
    previous_bot = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_bot", editable=False
    )
    # 0 for the launch's first bot, n for its n-th successor (at most HANDOFF_MAX_SUCCESSORS).
    handoff_generation = models.PositiveSmallIntegerField(default=0, editable=False)
    # The claim on this bot's hand-off (a conditional UPDATE): set once, by whoever made the successor.
    handed_off_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The launch's Idempotency-Key (a hash of the API user and the key): the database, not only the
    # cache, says that this key launched this bot, so that no repeat ever launches a second one.
    idempotency_key = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BotQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        permissions = [("launch_on_any_connection", "Can launch bots with any user's Zoom connection")]
        indexes = [
            # The expiry sweep and a join's lookup read only the waiting bots.
            models.Index(fields=["wait_until"], name="bot_waiting_deadline", condition=Q(status="waiting_for_user")),
            models.Index(fields=["meeting_id"], name="bot_waiting_meeting", condition=Q(status="waiting_for_user")),
            # A user's leave looks up only the bots of the meeting that may still hand off.
            models.Index(
                fields=["meeting_id"], name="bot_may_hand_off", condition=Q(handoff=True, handed_off_at__isnull=True)
            ),
            # Beat's catch-up of lost launch messages reads only the queued bots (else every tick
            # scanned every bot, the thousands waiting for their users included).
            models.Index(fields=["launch_next_attempt_at"], name="bot_queued_due", condition=Q(status="queued")),
        ]

    def __str__(self) -> str:
        return f"{self.bot_name} → {self.meeting_id or 'meeting'} ({self.status})"

    # What a bot shows of itself, on its admin page and in the API (never its token URLs).
    DESCRIBED_BY = (
        "connection",
        "meeting_id",
        "token_kinds",
        "bot_name",
        "join_at",
        "metadata",
        "status",
        "sub_code",
        "fatal_hint",
        "handoff",
    )
    # An Idempotency-Key names one launch for this long; after it, the same key is a new launch.
    IDEMPOTENCY_WINDOW = timedelta(hours=24)
    IN_CALL_STATUSES = (Status.IN_CALL_NOT_RECORDING, Status.IN_CALL_RECORDING)
    # Recall's call_ended sub_code when Zoom removed an OBF bot because its user left.
    REMOVED_WITH_ITS_USER = "authorized_user_left_meeting"
    HANDOFF_MAX_SUCCESSORS = 3

    @classmethod
    def launched_with_key(cls, idempotency_key: str) -> "Bot | None":
        """The bot an Idempotency-Key launched within IDEMPOTENCY_WINDOW, if any."""
        since = Now() - cls.IDEMPOTENCY_WINDOW
        return cls.objects.filter(idempotency_key=idempotency_key, created_at__gte=since).first()

    @classmethod
    def release_expired_key(cls, idempotency_key: str) -> None:
        """A key older than IDEMPOTENCY_WINDOW is free again: its old bot lets go of it."""
        since = Now() - cls.IDEMPOTENCY_WINDOW
        cls.objects.filter(idempotency_key=idempotency_key, created_at__lt=since).update(idempotency_key=None)

    @property
    def is_final(self) -> bool:
        return self.status in self.Status.final()

    # --- transitions: with BotLaunch's, the only writers of status, status_updated_at,
    # status_changes and the launch fields. Services decide when; these say how.

    def wait_for_user(self, *, payload: str, until: datetime) -> None:
        self.status = Bot.Status.WAITING_FOR_USER
        self.queued_payload = payload
        self.wait_until = until
        self.save(update_fields=["status", "queued_payload", "wait_until"])

    def record_status_change(self, *, code: str, sub_code: str | None, at: datetime, webhook_id: str) -> bool:
        """Append one of Recall's status events, on its own (committed before the status is
        taken, as a redelivery must find it); False for a redelivery (webhook_id seen)."""
        try:
            with transaction.atomic():
                BotStatusChange.objects.create(
                    bot=self,
                    code=code[:50],
                    sub_code=(sub_code or "")[:100],
                    occurred_at=at,
                    webhook_id=webhook_id[:100] or None,
                )
        except IntegrityError:
            return False
        return True

    def record_status(self, *, code: str, sub_code: str | None, at: datetime) -> "Bot":
        """In the caller's transaction: lock the row and take Recall's status unless a newer one
        is stored (webhooks arrive out of order). Returns the locked row."""
        bot = Bot.objects.select_for_update().get(pk=self.pk)
        bot._take_status(code=code[:50], sub_code=(sub_code or "")[:100], at=at)
        bot.save(update_fields=["status", "sub_code", "status_updated_at"])
        return bot

    def _take_status(self, *, code: str | None, sub_code: str, at: datetime) -> None:
        if self.status_updated_at is None or at >= self.status_updated_at:
            self.status = self.status if code is None else code
            self.sub_code = sub_code
            self.status_updated_at = at

    def end_waiting(self, *, status: str, at) -> bool:
        """A waiting bot ends without ever being sent to Recall (user_never_joined,
        meeting_ended), in the caller's transaction; False if it was not waiting."""
        ended = Bot.objects.filter(pk=self.pk, status=Bot.Status.WAITING_FOR_USER).update(
            status=status, status_updated_at=at, queued_payload=""
        )
        if ended:
            self._ended_unsent(status=status, at=at)
        return bool(ended)

    def _ended_unsent(self, *, status: str, at) -> None:
        self.status, self.status_updated_at, self.queued_payload = status, at, ""
        BotStatusChange.objects.create(bot=self, code=status, occurred_at=at)

    def release_waiting(self) -> bool:
        """Its user is in: the launch goes to Recall (as a queued launch, claimed there)."""
        return bool(
            Bot.objects.filter(pk=self.pk, status=Bot.Status.WAITING_FOR_USER).update(
                status=Bot.Status.QUEUED, launch_next_attempt_at=None
            )
        )

    def claim_handoff(self, *, at) -> bool:
        """Take this bot's one hand-off (a conditional UPDATE: of concurrent callers one wins)."""
        claimed = Bot.objects.filter(pk=self.pk, handed_off_at__isnull=True).update(handed_off_at=at)
        if claimed:
            self.handed_off_at = at
        return bool(claimed)

    def was_removed_with_its_user(self, *, since) -> bool:
        """In the call now, or its call ended because its OBF user left (and not otherwise), as
        Recall told the broker after `since`."""
        if self.status in self.IN_CALL_STATUSES:
            return True
        ended = self.status_changes.filter(code=Bot.Status.CALL_ENDED).order_by("-occurred_at").first()
        return ended is not None and ended.sub_code == self.REMOVED_WITH_ITS_USER and ended.received_at >= since
