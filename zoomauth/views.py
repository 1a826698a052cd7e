import logging
import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .models import ConnectSession, ZoomApp, ZoomConnection
from .services.connect import (
    ConnectFlowError,
    connection_abandon_authorization,
    connection_complete_authorization,
    connection_disconnect,
    connection_pending,
    connection_start_authorization,
)
from .services.grants import connection_set_sharing

logger = logging.getLogger(__name__)


@login_required
def home(request):
    """The signed-in user's Zoom connections, their callback URLs and their choices."""
    connections = ZoomConnection.objects.filter(user=request.user).select_related("app").order_by("-created_at")
    return render(
        request, "zoomauth/connections.html", {"connections": connections, "apps": ZoomApp.objects.order_by("name")}
    )


def _failure_page(request, message: str, status: int):
    return render(request, "zoomauth/connect_result.html", {"error": message}, status=status)


@login_required
@require_GET
def connect(request):
    apps = ZoomApp.objects.order_by("name")
    app_id = request.GET.get("app")
    if app_id:
        try:
            app = apps.filter(public_id=uuid.UUID(app_id)).first()
        except ValueError:
            app = None
        if app is None:
            return _failure_page(request, "That Zoom app does not exist.", 404)
    else:
        choices = list(apps[:2])  # one read: an app added or removed meanwhile changes nothing here
        if not choices:
            return _failure_page(request, "No Zoom app is set up yet. Ask an administrator to add one.", 404)
        if len(choices) > 1:
            return render(request, "zoomauth/choose_app.html", {"apps": apps})
        app = choices[0]
    return redirect(connection_start_authorization(session=request.session, app=app))


@require_http_methods(["GET", "POST"])
def connect_session(request, token: str):
    """A connect link made by the customer's backend, no sign-in. Its GET only shows a page: mail
    and chat previewers fetch links before the user clicks, and must not use it up. The user's
    click (a POST) uses the link and goes on to Zoom's consent."""
    session = ConnectSession.objects.select_related("app").for_token(token[:100]).first()
    if session is None:
        return _failure_page(request, "This connect link is not valid. Ask for a new one.", 404)
    if session.used_at is not None:
        return _failure_page(request, "This connect link was already used. Ask for a new one.", 410)
    if session.expires_at < timezone.now():
        return _failure_page(request, "This connect link has expired. Ask for a new one.", 410)
    if request.method == "GET":
        response = render(
            request, "zoomauth/connect_session.html", {"app": session.app, "expires_at": session.expires_at}
        )
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response
    if not session.claim():
        return _failure_page(request, "This connect link was already used. Ask for a new one.", 410)
    return redirect(
        connection_start_authorization(
            session=request.session, app=session.app, for_user_id=session.user_id, return_url=session.return_url
        )
    )


def _back_to(return_url: str, **query: str):
    separator = "&" if "?" in return_url else "?"
    return redirect(return_url + separator + urlencode(query))


@require_GET
def oauth_redirect(request):
    """Zoom's redirect after consent. A signed-in user finishes their own connect; an attempt
    started from a connect session finishes for that session's user and goes to its return_url."""
    state = request.GET.get("state", "")
    pending = connection_pending(session=request.session, state=state) or {}
    return_url = pending.get("return_url") or ""
    if not pending.get("user_id") and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    error = request.GET.get("error")
    if error:
        connection_abandon_authorization(session=request.session, state=state)
        denied = error == "access_denied"
        logger.info("zoom connect declined", extra={"zoom_error": error[:50]})
        if return_url:
            return _back_to(return_url, status="error", reason="access_denied" if denied else "zoom_error")
        message = (
            "You did not allow access in Zoom, so nothing was connected."
            if denied
            else "Zoom reported a problem with the authorization. Try again."
        )
        return _failure_page(request, message, 400 if denied else 502)
    try:
        connection = connection_complete_authorization(
            session=request.session, user=request.user, state=state, code=request.GET.get("code", "")
        )
    except ConnectFlowError as exc:
        if return_url:
            return _back_to(return_url, status="error", reason=exc.reason)
        return _failure_page(request, str(exc), exc.http_status)
    if return_url:
        return _back_to(return_url, status="connected", connection=str(connection.public_id))
    return render(request, "zoomauth/connect_result.html", {"connection": connection})


@login_required
@require_POST
def disconnect(request, public_id):
    connection = get_object_or_404(ZoomConnection, public_id=public_id, user=request.user)
    connection_disconnect(connection=connection, reason="Disconnected by the user.")
    messages.success(request, f"Disconnected {connection.email or connection.zoom_user_id}.")
    return redirect("zoomauth:home")


@login_required
@require_POST
def join_token_sharing(request, public_id):
    """The owner lets (or stops letting) other users' bots get join tokens from this connection."""
    connection = get_object_or_404(ZoomConnection, public_id=public_id, user=request.user)
    allow = request.POST.get("allow") == "1"
    if request.POST.get("setting") == "obf":
        connection_set_sharing(
            connection=connection, by_user=request.user, changes={"allow_obf_for_others": allow}, where="on their page"
        )
        if allow:
            messages.success(request, "Other users' bots may now carry your OBF token while you are in the meeting.")
        else:
            messages.success(request, "Only your own bots carry your OBF token.")
        return redirect("zoomauth:home")
    connection_set_sharing(
        connection=connection,
        by_user=request.user,
        changes={"allow_join_tokens_for_others": allow},
        where="on their page",
    )
    if connection.allow_join_tokens_for_others:
        messages.success(request, "Bots launched by other users into meetings you host can now get join tokens.")
    else:
        messages.success(request, "Only your own bots get join tokens from this connection.")
    return redirect("zoomauth:home")
