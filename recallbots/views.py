import hashlib
import logging
from typing import cast

import redis
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.generics import RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from brokerproject import jsonbody, signing

from .forms import LaunchForm
from .launch import LaunchError, LaunchForbidden, LaunchRepeated, LaunchRequest, bot_launch
from .models import Bot
from .serializers import BotSerializer, LaunchBotSerializer
from .status import bot_record_status

logger = logging.getLogger(__name__)

IDEMPOTENCY_SECONDS = int(Bot.IDEMPOTENCY_WINDOW.total_seconds())
PENDING = "pending"
# The marker of a request still running lives this long: longer than any request runs (gunicorn's
# timeout is 30 s). A marker left by a crash, or by an answer that could not be stored, then
# goes; the key stays on the bot it launched (Bot.idempotency_key), so a repeat replays that bot.
IDEMPOTENCY_PENDING_SECONDS = 120
# A repeat that finds the first request's marker without an answer tries again after this long.
PENDING_RETRY_AFTER = 30


@login_required
def launch(request):
    form = LaunchForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            bot = bot_launch(request=LaunchRequest.from_cleaned(user=request.user, data=data))
        except LaunchError as exc:
            form.add_error(None, str(exc))
            if isinstance(exc, LaunchForbidden):
                bots = Bot.objects.filter(user=request.user)[:20]
                return render(request, "recallbots/launch.html", {"form": form, "bots": bots}, status=403)
        else:
            waits = bot.status == Bot.Status.WAITING_FOR_USER
            messages.success(request, "The bot waits for you to join the meeting." if waits else "Bot launched.")
            return redirect("recallbots:bot", public_id=bot.public_id)
    bots = Bot.objects.filter(user=request.user)[:20]
    return render(request, "recallbots/launch.html", {"form": form, "bots": bots}, status=400 if form.errors else 200)


@login_required
def bot_detail(request, public_id):
    bot = get_object_or_404(Bot.objects.prefetch_related("status_changes"), public_id=public_id, user=request.user)
    return render(request, "recallbots/bot.html", {"bot": bot, "timeline": bot.timeline()})


def _forget(cache_key: str) -> None:
    try:
        cache.delete(cache_key)
    except CACHE_ERRORS as exc:  # the marker stays: repeats get 503 until it expires
        logger.warning("idempotency key not released: %s", type(exc).__name__)


# What the cache (Redis; files without REDIS_URL) raises when it is away. Anything else (a
# database error in the launch) is not the cache's, and is not reported as the cache's.
CACHE_ERRORS = (redis.RedisError, OSError)


def _retry_later(detail: str, *, retry_after: int) -> Response:
    response = Response({"detail": detail}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(retry_after)
    return response


def _replay_bot(bot: Bot) -> Response:
    """The answer of the launch that made `bot`, from the database (as it is now)."""
    if bot.status == Bot.Status.LAUNCH_FAILED and bot.recall_id is None:
        replay = Response({"detail": f"Recall did not create the bot: {bot.last_error}"}, status=422)
    else:
        waits = bot.status in (Bot.Status.QUEUED, Bot.Status.WAITING_FOR_USER)
        replay = Response(
            BotSerializer(bot).data, status=status.HTTP_202_ACCEPTED if waits else status.HTTP_201_CREATED
        )
    replay["Idempotent-Replayed"] = "true"
    return replay


class BotListCreateView(APIView):
    @extend_schema(responses=BotSerializer(many=True))
    def get(self, request):
        bots = (
            Bot.objects.filter(user=request.user)
            .select_related("connection", "duplicate_of")
            .prefetch_related("status_changes")[:100]
        )
        return Response(BotSerializer(bots, many=True).data)

    @extend_schema(
        request=LaunchBotSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="The same key within 24 h returns the first answer instead of launching again.",
            )
        ],
        responses={
            201: BotSerializer,
            202: OpenApiResponse(
                BotSerializer,
                description="Recall is throttling: queued (status `queued`); or waiting for the user to join "
                "(status `waiting_for_user`).",
            ),
        },
    )
    def post(self, request):
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return self._launch(request)
        if len(key) > 255:
            return Response({"detail": "Idempotency-Key is at most 255 characters."}, status=400)
        key_hash = hashlib.sha256(f"{request.user.pk}:{key}".encode()).hexdigest()
        cache_key = "idempotency:bots:" + key_hash
        try:
            stored = cache.get(cache_key)
            if stored is None and (made := Bot.launched_with_key(key_hash)) is not None:
                return _replay_bot(made)  # launched; its answer was not stored, or Redis lost it
            # The marker goes in before the launch: a repeat that finds it never launches. The
            # bot, once stored, carries the key, which outlives the marker.
            claimed = stored is None and cache.add(cache_key, PENDING, timeout=IDEMPOTENCY_PENDING_SECONDS)
            if not claimed and stored is None:
                stored = cache.get(cache_key)
        except CACHE_ERRORS as exc:
            logger.warning("idempotency keys unavailable: %s", type(exc).__name__)
            return _retry_later(
                "Idempotency-Key cannot be checked right now (the broker's cache is away): nothing was launched. "
                "Try again.",
                retry_after=5,
            )
        if not claimed:
            if stored is None or stored == PENDING:
                return _retry_later(
                    "The first request with this Idempotency-Key is still running, or its answer could not be "
                    "stored: a second bot is never launched for it. Try again later, or look the bot up in "
                    "GET /api/bots/.",
                    retry_after=PENDING_RETRY_AFTER,
                )
            replay = Response(stored["body"], status=stored["status"])
            replay["Idempotent-Replayed"] = "true"
            return replay
        # A launch that raises may have created a bot at Recall (a database error after the
        # create): the marker stays, and repeats get 503 until it expires (then the bot's key).
        try:
            response = self._launch(request, idempotency_key=key_hash)
        except APIException:  # bad input, refused before anything was launched: the key may be used again
            _forget(cache_key)
            raise
        try:
            if response.status_code in (201, 202, 422):  # a launch was attempted: its answer stands
                cache.set(cache_key, {"status": response.status_code, "body": response.data}, IDEMPOTENCY_SECONDS)
            else:
                cache.delete(cache_key)  # refused before anything happened: the key may be used again
        except CACHE_ERRORS as exc:  # the launch happened; the marker, then the bot's key, answer repeats
            logger.warning("idempotency answer not stored: %s", type(exc).__name__)
        return response

    def _launch(self, request, *, idempotency_key: str = ""):
        serializer = LaunchBotSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = {**serializer.validated_data, "idempotency_key": idempotency_key}
        try:
            bot = bot_launch(
                request=LaunchRequest.from_cleaned(user=request.user, data=data), queue_when_throttled=True
            )
        except LaunchRepeated as exc:  # a repeat that raced the first past an expired marker
            return _replay_bot(exc.bot)
        except LaunchForbidden as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
        except LaunchError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        waits = bot.status in (Bot.Status.QUEUED, Bot.Status.WAITING_FOR_USER)
        code = status.HTTP_202_ACCEPTED if waits else status.HTTP_201_CREATED
        return Response(BotSerializer(bot).data, status=code)


class BotDetailView(RetrieveAPIView):
    serializer_class = BotSerializer
    lookup_field = "public_id"

    def get_queryset(self):
        user = cast(User, self.request.user)  # IsAuthenticated (the default permission) let it in
        return Bot.objects.filter(user=user).select_related("duplicate_of").prefetch_related("status_changes")


@csrf_exempt
@require_POST
def recall_webhook(request):
    """Bot status events from Recall, signed the Standard Webhooks (or svix) way."""
    secret = settings.RECALL_VERIFICATION_SECRET
    if not secret:
        return HttpResponse("RECALL_VERIFICATION_SECRET is not configured.", status=503, content_type="text/plain")
    try:
        webhook_id = signing.verify(secret=secret, headers=request.headers, body=request.body)
    except signing.SignatureError as exc:
        return HttpResponse(f"Bad signature: {exc}.", status=401, content_type="text/plain")
    try:
        event = jsonbody.loads(request.body, text="strip")
        status_data, bot_data = event["data"]["data"], event["data"]["bot"]
    except (jsonbody.MalformedJSON, KeyError, TypeError):
        status_data = bot_data = None
    if not (isinstance(status_data, dict) and isinstance(bot_data, dict)):
        return HttpResponse("Not a bot status event.", status=400, content_type="text/plain")
    if not str(event.get("event", "")).startswith("bot."):
        return HttpResponse("ignored", content_type="text/plain")
    bot_record_status(
        recall_bot_id=str(bot_data.get("id", "")),
        code=str(status_data.get("code", "")),
        sub_code=str(status_data["sub_code"]) if status_data.get("sub_code") else None,
        occurred_at=status_data.get("updated_at"),
        webhook_id=webhook_id,
        broker_bot_id=str((bot_data.get("metadata") or {}).get("broker_bot_id", ""))[:64]
        if isinstance(bot_data.get("metadata"), dict)
        else "",
    )
    return HttpResponse("ok", content_type="text/plain")
