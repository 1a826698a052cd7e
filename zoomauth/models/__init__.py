"""zoomauth's models, one module per use case; every name is importable from zoomauth.models."""

from .callback_log import CallbackHourStat, CallbackLog, CallbackLogQuerySet
from .connect_sessions import ConnectSession, ConnectSessionQuerySet
from .connections import REFRESH_LEASE, ZoomConnection, ZoomConnectionQuerySet
from .grants import CallbackGrant, CallbackGrantQuerySet
from .meetings import MeetingActivity, MeetingActivityQuerySet, MeetingPresence, MeetingPresenceQuerySet, ZoomMeeting
from .zoom_apps import ZoomApp, public_url

__all__ = [
    "REFRESH_LEASE",
    "CallbackGrant",
    "CallbackGrantQuerySet",
    "CallbackHourStat",
    "CallbackLog",
    "CallbackLogQuerySet",
    "ConnectSession",
    "ConnectSessionQuerySet",
    "MeetingActivity",
    "MeetingActivityQuerySet",
    "MeetingPresence",
    "MeetingPresenceQuerySet",
    "ZoomApp",
    "ZoomConnection",
    "ZoomConnectionQuerySet",
    "ZoomMeeting",
    "public_url",
]
