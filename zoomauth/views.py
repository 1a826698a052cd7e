import logging
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .models import ZoomApp, ZoomConnection
from .services import (
    ConnectFlowError,
    connection_complete_authorization,
    connection_disconnect,
    connection_start_authorization,
)

logger = logging.getLogger(__name__)


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
    elif apps.count() == 1:
        app = apps.first()
    elif not apps:
        return _failure_page(request, "No Zoom app is set up yet. Ask an administrator to add one.", 404)
    else:
        return render(request, "zoomauth/choose_app.html", {"apps": apps})
    return redirect(connection_start_authorization(session=request.session, app=app))


@login_required
@require_GET
def oauth_redirect(request):
    error = request.GET.get("error")
    if error:
        denied = error == "access_denied"
        message = (
            "You did not allow access in Zoom, so nothing was connected."
            if denied
            else "Zoom reported a problem with the authorization. Try again."
        )
        logger.info("zoom connect declined", extra={"zoom_error": error[:50]})
        return _failure_page(request, message, 400 if denied else 502)
    try:
        connection = connection_complete_authorization(
            session=request.session,
            user=request.user,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
        )
    except ConnectFlowError as exc:
        return _failure_page(request, str(exc), exc.http_status)
    return render(request, "zoomauth/connect_result.html", {"connection": connection})


@login_required
@require_POST
def disconnect(request, public_id):
    connection = get_object_or_404(ZoomConnection, public_id=public_id, user=request.user)
    connection_disconnect(connection=connection, reason="Disconnected by the user.")
    messages.success(request, f"Disconnected {connection.email or connection.zoom_user_id}.")
    return redirect("accounts:home")
