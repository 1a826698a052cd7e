"""zoomauth's services by use case: connect.py (the OAuth connect flow, saving a grant, reconnect,
disconnect), refresh.py (fresh access tokens, the refresh engine), grants.py (callback secrets and
bots' callback credentials). Reads several places need are in zoomauth/selectors.py.

The names other apps (and the tests) import from `zoomauth.services` are re-exported here."""

from ..selectors import connection_for_meeting, connection_for_zoom_user
from .connect import (
    SESSION_KEY,
    ConnectFlowError,
    connection_abandon_authorization,
    connection_complete_authorization,
    connection_disconnect,
    connection_pending,
    connection_save_grant,
    connection_start_authorization,
    connection_update_pmi,
    meeting_record_host,
    token_revoke_at_zoom,
)
from .grants import (
    callback_grant_issue,
    callback_grants_end,
    callback_grants_reopen,
    connection_rotate_callback_secret,
    connection_set_sharing,
    record_reveal,
)
from .refresh import (
    ConnectionUnusable,
    FreshToken,
    RefreshLeaseLost,
    RefreshPending,
    _lease_seconds,
    _recover_from_invalid_grant,
    connection_fresh_access_token,
    connection_mark_access_token_rejected,
    connection_refresh_if_due,
    connection_store_refreshed_tokens,
)

__all__ = [
    "SESSION_KEY",
    "ConnectFlowError",
    "ConnectionUnusable",
    "FreshToken",
    "RefreshLeaseLost",
    "RefreshPending",
    "_lease_seconds",
    "_recover_from_invalid_grant",
    "callback_grant_issue",
    "callback_grants_end",
    "callback_grants_reopen",
    "connection_abandon_authorization",
    "connection_complete_authorization",
    "connection_disconnect",
    "connection_for_meeting",
    "connection_for_zoom_user",
    "connection_fresh_access_token",
    "connection_mark_access_token_rejected",
    "connection_pending",
    "connection_refresh_if_due",
    "connection_rotate_callback_secret",
    "connection_save_grant",
    "connection_set_sharing",
    "connection_start_authorization",
    "connection_store_refreshed_tokens",
    "connection_update_pmi",
    "meeting_record_host",
    "record_reveal",
    "token_revoke_at_zoom",
]
