import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Case, DurationField, ExpressionWrapper, F, Q, Value, When
from django.db.models.functions import Now
from django.utils import timezone

from brokerproject import claims
from brokerproject.crypto import StrictEncryptedTextField
from zoomauth.models import CallbackGrant, CallbackLog, ZoomApp, ZoomConnection


class RecallOAuthApp(models.Model):
    """A Zoom app as registered with Recall (POST /api/v2/zoom-oauth-apps/)."""

    zoom_app = models.OneToOneField(ZoomApp, on_delete=models.PROTECT, related_name="recall_app")
    recall_id = models.CharField(max_length=64, unique=True)
    base_url = models.URLField(help_text="The Recall region the app was created in.")
    webhook_last_validation_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Recall Zoom OAuth app"

    def __str__(self) -> str:
        return f"{self.zoom_app} in Recall"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/v2/zoom-oauth-apps/{self.recall_id}/webhook"


class RecallCredential(models.Model):
    """A user's Zoom credential in Recall (POST /api/v2/zoom-oauth-credentials/)."""

    class Mode(models.TextChoices):
        CUSTOMER_MANAGED = "customer_managed", "Customer-managed"
        RECALL_MANAGED = "recall_managed", "Recall-managed"

    class Status(models.TextChoices):
        HEALTHY = "healthy", "Healthy"
        UNHEALTHY = "unhealthy", "Unhealthy"
        UNKNOWN = "unknown", "Unknown"

    connection = models.OneToOneField(ZoomConnection, on_delete=models.CASCADE, related_name="recall_credential")
    recall_app = models.ForeignKey(RecallOAuthApp, on_delete=models.PROTECT, related_name="credentials")
    recall_id = models.CharField(max_length=64, unique=True)
    mode = models.CharField(max_length=20, choices=Mode.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNKNOWN)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "Recall Zoom credential"

    def __str__(self) -> str:
        return f"{self.connection} ({self.get_mode_display()})"


class BotQuerySet(models.QuerySet):
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


# A queued launch's claim: launch_next_attempt_at is moved `seconds` ahead (by the database's
# clock) and launch_claim_holder names the worker; only that worker requeues, fails or ends the
# launch. A Recall bot stored for the launch ends every claim on it.
LAUNCH_LEASE = claims.Lease(field="launch_next_attempt_at", holder_field="launch_claim_holder")


class Bot(models.Model):
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

    FATAL_HINTS = {
        "zoom_invalid_join_token": "The join-token callback returned something Zoom refused: check that the "
        "meeting's host has connected Zoom and that the join-token URL answers with a bare token.",
        "meeting_requires_sign_in": "The meeting only admits signed-in users: launch with a ZAK "
        "(the user's or the service account's).",
        "zoom_sdk_credentials_missing": "Recall has no Zoom SDK credentials for this workspace.",
        "zoom_email_required": "The meeting requires an email: registration-required meetings need zoom.user_email.",
        "zoom_registration_required": "The meeting requires registration: use the link with tk= and an email.",
        "meeting_not_found": "Zoom says the meeting does not exist: check the meeting link.",
        "meeting_password_incorrect": "The passcode is wrong: paste the invite link that includes pwd=.",
        "zoom_meeting_not_accessible": "The meeting is not accessible to the bot "
        "(an external meeting without OBF or ZAK?).",
        "zoom_obf_user_not_in_meeting": "The OBF bot waits for its user: the user must join the meeting first.",
    }

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
    # Recall's token GETs carry no bot id: a fetch belongs to a bot when it is for the bot's
    # connection, of a kind the bot was given, for its meeting, within its life (with this slack).
    FETCH_SLACK = timedelta(seconds=5)

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

    @property
    def launch_outcome_unknown(self) -> bool:
        return self.launch_ambiguous_at is not None

    def mark_launch_ambiguous(self) -> None:
        """A create failed ambiguously just now (the database's clock: the lag window is measured
        on one clock whichever worker looks next)."""
        Bot.objects.filter(pk=self.pk).update(launch_ambiguous_at=Now())
        self.launch_ambiguous_at = Bot.objects.values_list("launch_ambiguous_at", flat=True).get(pk=self.pk)

    def list_lag_left(self, *, lag: timedelta) -> float:
        """Seconds until Recall's bot list, still without this launch's bot, can be believed (0:
        it can): measured from the last ambiguous create, on the database's clock."""
        if self.launch_ambiguous_at is None:
            return 0.0
        left = (
            Bot.objects.filter(pk=self.pk)
            .annotate(left=ExpressionWrapper(F("launch_ambiguous_at") + lag - Now(), output_field=DurationField()))
            .values_list("left", flat=True)
            .get()
        )
        return max(0.0, left.total_seconds()) if left is not None else 0.0

    # --- transitions: the only writers of status, status_updated_at, status_changes and the
    # launch fields. Services decide when; these say how.

    def queue(self, *, payload: str, error: str = "", retry_in: float | None = None) -> bool:
        """The launch waits as `queued`, its create-bot body stored, until a worker creates it at
        Recall (after `retry_in` seconds; at once when None). False over a bot that holds a Recall
        id already (its own status webhook adopted it during an ambiguous create). Read back."""
        next_at = timezone.now() + timedelta(seconds=retry_in) if retry_in is not None else None
        queued = Bot.objects.filter(pk=self.pk, recall_id__isnull=True).update(
            status=Bot.Status.QUEUED, last_error=error[:500], queued_payload=payload, launch_next_attempt_at=next_at
        )
        self.refresh_from_db()
        return bool(queued)

    def queue_retry(self, *, holder: uuid.UUID, retry_in: float, error: str) -> bool:
        """A queued launch's try failed retryably: the next one in `retry_in` seconds, and the claim
        is freed. False (nothing written) when `holder` no longer holds the claim."""
        rows = Bot.objects.filter(pk=self.pk, status=Bot.Status.QUEUED)
        retry = {"launch_next_attempt_at": Now() + timedelta(seconds=retry_in), "last_error": error[:500]}
        return bool(claims.release(rows, LAUNCH_LEASE, holder=holder, **retry))

    def launch_failed(self, *, error: str, holder: uuid.UUID | None = None) -> bool:
        """The launch failed for good. A queued launch's try passes its `holder`: False (nothing
        written) when the claim was taken over, as the newer holder's outcome stands."""
        failed = {"status": Bot.Status.LAUNCH_FAILED, "last_error": error[:500], "queued_payload": ""}
        if holder is None:
            Bot.objects.filter(pk=self.pk).update(**failed)
        elif not claims.release(Bot.objects.filter(pk=self.pk), LAUNCH_LEASE, holder=holder, **failed):
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

    def take_recall_id(self, recall_id: str, *, holder: uuid.UUID | None = None) -> bool:
        """The launch holds this Recall bot from now on; False when it already holds another one
        (a webhook adopted the first bot, or a worker stored its own): the caller records a
        duplicate instead of overwriting the id the first bot's webhooks are found by.

        The Recall bot exists whoever holds the claim, so a queued launch's try (`holder` given)
        takes it while the launch is still undecided (queued: a newer holder still at Recall then
        finds its own bot a duplicate), even after its claim was taken over; over a launch a newer
        holder already ended (launch_failed, meeting_ended) it is a duplicate. Taking it ends any
        claim: a holder still at Recall can then neither fail nor requeue the launch."""
        rows = Bot.objects.filter(pk=self.pk, recall_id__isnull=True)
        if holder is not None:
            rows = rows.filter(status=Bot.Status.QUEUED)
        taken = rows.update(
            recall_id=recall_id[:64],
            queued_payload="",
            last_error="",
            launch_next_attempt_at=None,
            launch_claim_holder=None,
            status=Case(When(status=Bot.Status.QUEUED, then=Value(Bot.Status.CREATED)), default=F("status")),
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
                return Bot.objects.create(
                    **fields, recall_id=recall_id[:64], duplicate_of=self, status=Bot.Status.CREATED
                )
        except IntegrityError:
            return Bot.objects.get(recall_id=recall_id[:64])

    def end_waiting(self, *, status: str, at) -> bool:
        """A waiting bot ends without ever being sent to Recall (user_never_joined,
        meeting_ended), in the caller's transaction; False if it was not waiting."""
        ended = Bot.objects.filter(pk=self.pk, status=Bot.Status.WAITING_FOR_USER).update(
            status=status, status_updated_at=at, queued_payload=""
        )
        if ended:
            self._ended_unsent(status=status, at=at)
        return bool(ended)

    def end_queued_unsent(self, *, status: str, at, holder: uuid.UUID) -> bool:
        """A queued launch that Recall has never been asked for (no ambiguous create) ends without
        a bot; False if it is no longer such a launch, or `holder` no longer holds its claim."""
        rows = Bot.objects.filter(
            pk=self.pk, status=Bot.Status.QUEUED, recall_id__isnull=True, launch_ambiguous_at__isnull=True
        )
        unsent = {"status": status, "status_updated_at": at, "queued_payload": ""}
        ended = claims.release(rows, LAUNCH_LEASE, holder=holder, **unsent)
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

    def obf_minted_for(self):
        """The connection (id) whose OBF token the bot last fetched, and when (None, None)."""
        fetch = (
            CallbackLog.objects.filter(grant__holder=self.callback_holder, kind=CallbackLog.Kind.OBF, status_code=200)
            .order_by("-created_at")
            .values_list("connection_id", "created_at")
            .first()
        )
        return fetch or (None, None)

    @property
    def callback_holder(self) -> str:
        """Who the bot's token-URL credentials (zoomauth's CallbackGrant) are made for."""
        return f"bot:{self.public_id}"

    def token_fetches(self):
        """The token callbacks Recall made for this bot (never a token: the audit holds none):
        those that came with the bot's own URLs; for bots launched before bots had their own
        URLs, those for its connection, kinds and meeting during its life."""
        if self.pk and CallbackGrant.objects.filter(holder=self.callback_holder).exists():
            return (
                CallbackLog.objects.filter(grant__holder=self.callback_holder)
                .select_related("connection")
                .order_by("created_at")[:100]
            )
        kinds = [Bot.TokenKind(kind).callback_kind for kind in self.token_kinds if kind in Bot.TokenKind.values]
        if self.connection_id is None or not kinds:
            return CallbackLog.objects.none()
        fetches = CallbackLog.objects.filter(
            connection_id=self.connection_id, kind__in=kinds, created_at__gte=self.created_at - self.FETCH_SLACK
        ).filter(Q(meeting_id=self.meeting_id) | Q(meeting_id=""))
        if self.is_final and self.status_updated_at:
            fetches = fetches.filter(created_at__lte=self.status_updated_at + self.FETCH_SLACK)
        return fetches.order_by("created_at")[:100]

    def timeline(self) -> list[dict]:
        """Status changes and token fetches in one list by time, for the bot page and the admin."""
        rows = [
            {"at": change.occurred_at, "what": "status", "code": change.code, "sub_code": change.sub_code}
            for change in self.status_changes.all()
        ]
        rows += [{"at": fetch.created_at, "what": "fetch", "fetch": fetch} for fetch in self.token_fetches()]
        return sorted(rows, key=lambda row: row["at"])

    @property
    def fatal_hint(self) -> str:
        if not self.sub_code:
            return ""
        return self.FATAL_HINTS.get(self.sub_code, "")


class BotStatusChange(models.Model):
    """One status event; webhook_id makes Recall's redeliveries idempotent."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="status_changes")
    code = models.CharField(max_length=50)
    sub_code = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField()
    webhook_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("occurred_at", "pk")

    def __str__(self) -> str:
        return self.code + (f" ({self.sub_code})" if self.sub_code else "")
