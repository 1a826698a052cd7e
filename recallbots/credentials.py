"""Users' Zoom credentials in Recall: customer-managed (Recall calls the broker's access-token
URL) and Recall-managed (Recall holds the tokens; the broker asks it for an access token)."""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokerproject.celery import enqueue_safely
from zoomauth.models import ZoomApp, ZoomConnection
from zoomauth.services import (
    ConnectFlowError,
    ConnectionUnusable,
    connection_save_grant,
)
from zoomauth.token_sources import TokenSourceError
from zoomauth.zoom import ZoomUser

from . import recall
from .models import RecallCredential, RecallOAuthApp
from .recall_apps import recall_client

logger = logging.getLogger(__name__)


def credential_sync_after_connect(*, connection_id: int) -> None:
    """After a customer-managed connect: register the user's credential in Recall (in a task)."""
    connection = ZoomConnection.objects.select_related("app").get(pk=connection_id)
    if not settings.RECALL_API_KEY or not RecallOAuthApp.objects.filter(zoom_app=connection.app).exists():
        logger.info(
            "no Recall credential registered: RECALL_API_KEY unset or the app is not registered with Recall",
            extra={"connection": connection.public_id},
        )
        return
    # After the commit (the task must see the connection); the queue being away must not fail the
    # connect page: enqueue_safely logs and moves on.
    transaction.on_commit(lambda: enqueue_safely("recallbots.tasks.credential_create_customer_managed", connection_id))


def _delete_conflicting(client: recall.RecallClient, *, recall_app: RecallOAuthApp, body: dict) -> bool:
    """Recall allows one credential per (app, Zoom user): find the old one, delete it."""
    user_id = body.get("conflicting_zoom_user_id")
    account_id = body.get("conflicting_zoom_account_id")
    if not (user_id or account_id):
        return False
    filters: dict[str, Any] = {"oauth_app": recall_app.recall_id}
    filters["user_id" if user_id else "account_id"] = user_id or account_id
    for credential in client.list_credentials(**filters):
        client.delete_credential(credential["id"])
        RecallCredential.objects.filter(recall_id=credential["id"]).delete()
    return True


def credential_create_customer_managed(*, connection: ZoomConnection) -> RecallCredential:
    recall_app = RecallOAuthApp.objects.get(zoom_app=connection.app)
    client = recall_client(base_url=recall_app.base_url)
    old = RecallCredential.objects.filter(connection=connection).first()
    if old is not None:
        try:
            client.delete_credential(old.recall_id)
        except recall.RecallNotFoundError:
            pass
        old.delete()
    try:
        body = client.create_credential_customer_managed(
            oauth_app=recall_app.recall_id, access_token_callback_url=connection.access_token_callback_url
        )
    except recall.RecallError as exc:
        if exc.status != 400 or not _delete_conflicting(client, recall_app=recall_app, body=exc.body):
            raise
        body = client.create_credential_customer_managed(
            oauth_app=recall_app.recall_id, access_token_callback_url=connection.access_token_callback_url
        )
    return RecallCredential.objects.create(
        connection=connection,
        recall_app=recall_app,
        recall_id=body["id"],
        mode=RecallCredential.Mode.CUSTOMER_MANAGED,
        status=body.get("status") or RecallCredential.Status.UNKNOWN,
        last_synced_at=timezone.now(),
    )


def credential_create_recall_managed(*, user, app: ZoomApp, code: str, redirect_uri: str, code_verifier: str):
    """Recall-managed connect: the code goes to Recall, which exchanges it and keeps the tokens."""
    recall_app = RecallOAuthApp.objects.filter(zoom_app=app).first()
    if recall_app is None:
        raise ConnectFlowError(
            "This Zoom app is not registered with Recall yet. Ask an administrator.", http_status=503
        )
    client = recall_client(base_url=recall_app.base_url)
    try:
        body = client.create_credential_recall_managed(
            oauth_app=recall_app.recall_id, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
    except recall.RecallRetryableError:
        raise ConnectFlowError(
            "Recall is not answering right now. Connect again in a minute.", http_status=503
        ) from None
    except recall.RecallError as exc:
        if exc.status == 400 and _delete_conflicting(client, recall_app=recall_app, body=exc.body):
            raise ConnectFlowError(
                "This Zoom account was connected before; the old link was removed. Connect once more.", http_status=409
            ) from None
        logger.warning("recall refused credential: %s", exc)
        raise ConnectFlowError(f"Recall refused the connection: {exc}", http_status=502) from None

    zoom_user_id = body.get("user_id") or body.get("account_id") or body["id"]
    me = ZoomUser(id=str(zoom_user_id), account_id=str(body.get("account_id") or ""), email="", pmi="")
    connection = connection_save_grant(user=user, app=app, me=me, tokens=None, token_source="recall")
    RecallCredential.objects.update_or_create(
        connection=connection,
        defaults={
            "recall_app": recall_app,
            "recall_id": body["id"],
            "mode": RecallCredential.Mode.RECALL_MANAGED,
            "status": body.get("status") or RecallCredential.Status.UNKNOWN,
            "last_synced_at": timezone.now(),
        },
    )
    return connection


def credential_delete_for_connection(*, connection_id: int) -> None:
    credential = RecallCredential.objects.select_related("recall_app").filter(connection_id=connection_id).first()
    if credential is None:
        return
    try:
        recall_client(base_url=credential.recall_app.base_url).delete_credential(credential.recall_id)
    except recall.RecallNotFoundError:
        pass
    except recall.RecallRetryableError:
        raise  # the task tries again later
    except recall.RecallError as exc:
        logger.warning("could not delete the Recall credential: %s", exc, extra={"credential": credential.recall_id})
        return
    credential.delete()


def credential_access_token(*, connection: ZoomConnection, timeout: float | None = None) -> tuple[str, datetime]:
    """Recall-managed: Recall holds the tokens; ask it for a current access token.
    Recall failing is a TokenSourceError (Recall's, not Zoom's); no credential means reconnect."""
    credential = RecallCredential.objects.select_related("recall_app").filter(connection=connection).first()
    if credential is None:
        raise ConnectionUnusable(
            "No Recall credential for this connection.", status=ZoomConnection.Status.NEEDS_RECONNECT
        )
    client = recall.RecallClient(base_url=credential.recall_app.base_url, timeout=timeout, max_attempts=1)
    try:
        token = client.credential_access_token(credential.recall_id)
    except recall.RecallError as exc:
        raise TokenSourceError(
            f"Recall could not give an access token: {exc}",
            retryable=isinstance(exc, recall.RecallRetryableError),
            retry_after=getattr(exc, "retry_after", None),
        ) from None
    return token.token, recall.parse_time(token.expires_at) or timezone.now() + timedelta(minutes=5)


class RecallManagedTokens:
    """zoomauth's TokenSource for Recall-managed connections (registered in apps.py)."""

    def access_token(self, *, connection, timeout):
        return credential_access_token(connection=connection, timeout=timeout)

    def complete_authorization(self, *, user, app, code, redirect_uri, code_verifier):
        return credential_create_recall_managed(
            user=user, app=app, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )


def credentials_sync_statuses(*, recall_app: RecallOAuthApp) -> int:
    """Read every credential of an app from Recall's list (a page per call, not a call per
    credential: the list endpoint allows 60 calls a minute) and store the statuses."""
    remote = {
        body["id"]: body.get("status") or RecallCredential.Status.UNKNOWN
        for body in recall_client(base_url=recall_app.base_url).list_credentials(oauth_app=recall_app.recall_id)
    }
    now = timezone.now()
    updated = 0
    for status in set(remote.values()):
        ids = [recall_id for recall_id, value in remote.items() if value == status]
        updated += RecallCredential.objects.filter(recall_app=recall_app, recall_id__in=ids).update(
            status=status, last_synced_at=now
        )
    return updated


def credential_sync_status(*, credential: RecallCredential) -> None:
    body = recall_client(base_url=credential.recall_app.base_url).get_credential(credential.recall_id)
    credential.status = body.get("status") or RecallCredential.Status.UNKNOWN
    credential.last_synced_at = timezone.now()
    credential.save(update_fields=["status", "last_synced_at"])
