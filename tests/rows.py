"""Many rows at once, as the scale tests and the benchmarks need them (bulk_create, no signals)."""

from datetime import datetime, timedelta

from django.utils import timezone

from recallbots.models import Bot
from zoomauth.models import ZoomConnection


def waiting_bots(connection: ZoomConnection, count: int, *, first_meeting: int, batch_size: int = 2000) -> list[Bot]:
    """`count` OBF bots of `connection` waiting (an hour more) for their user, a meeting each from
    `first_meeting` on."""
    until = timezone.now() + timedelta(hours=1)
    return Bot.objects.bulk_create(
        (
            Bot(
                user=connection.user,
                connection=connection,
                meeting_url=f"https://zoom.us/j/{first_meeting + i}",
                meeting_id=str(first_meeting + i),
                token_kinds=["obf"],
                status=Bot.Status.WAITING_FOR_USER,
                start=Bot.Start.WHEN_USER_JOINS,
                wait_until=until,
            )
            for i in range(count)
        ),
        batch_size=batch_size,
    )


def healthy_connections(
    user, app, count: int, *, first: int = 0, refreshed_ago: timedelta, now: datetime | None = None
) -> list[ZoomConnection]:
    """`count` connections (zoom users zu_<first>…) whose tokens have 50 minutes left: none is due."""
    now = now or timezone.now()
    return ZoomConnection.objects.bulk_create(
        (
            ZoomConnection(
                user=user,
                app=app,
                zoom_user_id=f"zu_{first + i}",
                access_token_expires_at=now + timedelta(minutes=50),
                last_refreshed_at=now - refreshed_ago,
            )
            for i in range(count)
        ),
        batch_size=5000,
    )
