"""The recallbots services, by use case: recall_apps (the Zoom apps in Recall), credentials,
launch and launch_at_recall, status (Recall's webhooks), receivers (zoomauth's signals). This module only re-exports
their public names for the callers that import them from here; new code imports the use case's
module."""

from .credentials import (
    RecallManagedTokens,
    credential_access_token,
    credential_create_customer_managed,
    credential_create_recall_managed,
    credential_delete_for_connection,
    credential_sync_after_connect,
    credential_sync_status,
    credentials_sync_statuses,
)
from .launch import (
    API_RECALL_MAX_WAIT,
    OBF_WAITING_ROOM_TIMEOUT,
    LaunchError,
    LaunchForbidden,
    LaunchRepeated,
    LaunchRequest,
    bot_launch,
    bot_recall_payload,
    bot_zoom_config,
    join_at_problem,
    service_account_connection,
    validate_join_at,
)
from .launch_at_recall import (
    LaunchUnresolved,
    bot_create_at_recall,
)
from .recall_apps import (
    recall_app_delete,
    recall_app_push_secrets,
    recall_app_register,
    recall_client,
    recall_forward_targets,
)
from .receivers import (
    on_callback_secret_rotated,
    on_connection_connected,
    on_connection_disconnected,
    on_meeting_ended,
    on_user_joined,
    on_user_left,
)
from .selectors import (
    bots_queued_due,
)
from .status import (
    bot_record_status,
    bot_status_event,
)

__all__ = [
    "API_RECALL_MAX_WAIT",
    "LaunchError",
    "LaunchForbidden",
    "LaunchRepeated",
    "LaunchRequest",
    "LaunchUnresolved",
    "OBF_WAITING_ROOM_TIMEOUT",
    "RecallManagedTokens",
    "bot_create_at_recall",
    "bot_launch",
    "bot_recall_payload",
    "bot_record_status",
    "bot_status_event",
    "bot_zoom_config",
    "bots_queued_due",
    "credential_access_token",
    "credential_create_customer_managed",
    "credential_create_recall_managed",
    "credential_delete_for_connection",
    "credential_sync_after_connect",
    "credential_sync_status",
    "credentials_sync_statuses",
    "join_at_problem",
    "on_callback_secret_rotated",
    "on_connection_connected",
    "on_connection_disconnected",
    "on_meeting_ended",
    "on_user_joined",
    "on_user_left",
    "recall_app_delete",
    "recall_app_push_secrets",
    "recall_app_register",
    "recall_client",
    "recall_forward_targets",
    "service_account_connection",
    "validate_join_at",
]
