from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from zoomauth.models import ZoomApp, ZoomConnection


@login_required
def home(request):
    connections = ZoomConnection.objects.filter(user=request.user).select_related("app").order_by("-created_at")
    return render(
        request,
        "accounts/home.html",
        {"connections": connections, "apps": ZoomApp.objects.order_by("name")},
    )
