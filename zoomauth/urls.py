from django.urls import path

from . import callbacks, views

app_name = "zoomauth"

urlpatterns = [
    path("zoom/connect/", views.connect, name="connect"),
    path("zoom/callback/", views.oauth_redirect, name="oauth-redirect"),  # the redirect URI registered in Zoom
    path("zoom/connections/<uuid:public_id>/disconnect/", views.disconnect, name="disconnect"),
    path("recall/callbacks/<slug:kind>/", callbacks.TokenCallbackView.as_view(), name="token-callback"),
]
