"""The broker's URLs plus /bench/floor: the same stack (gunicorn, Django, DRF, Redis) doing the least
a token callback could do, reading one cached value. Callback figures are printed beside it."""

from django.core.cache import cache
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from brokerproject.urls import urlpatterns as broker_urlpatterns
from zoomauth.callbacks import PlainTextRenderer


class FloorView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [PlainTextRenderer]
    throttle_classes: list = []

    def get(self, request):
        return Response(cache.get("bench:floor", "floor"), content_type="text/plain; charset=utf-8")


urlpatterns = [path("bench/floor", FloorView.as_view()), *broker_urlpatterns]
