from django.urls import path

from . import api, callbacks, views

app_name = "zoomauth"

urlpatterns = [
    path("", views.home, name="home"),  # the signed-in user's connections
    path("zoom/connect/", views.connect, name="connect"),
    path("zoom/callback/", views.oauth_redirect, name="oauth-redirect"),  # the redirect URI registered in Zoom
    path("zoom/connections/<uuid:public_id>/disconnect/", views.disconnect, name="disconnect"),
    path(
        "zoom/connections/<uuid:public_id>/join-token-sharing/",
        views.join_token_sharing,
        name="join-token-sharing",
    ),
    path("zoom/connect/s/<str:token>/", views.connect_session, name="connect-session"),
    path("recall/callbacks/<slug:kind>/", callbacks.TokenCallbackView.as_view(), name="token-callback"),
    path("api/connect-sessions/", api.ConnectSessionCreateView.as_view(), name="api-connect-sessions"),
    path("api/connections/", api.ConnectionListView.as_view(), name="api-connections"),
    path("api/connections/<uuid:connection_id>/", api.ConnectionDetailView.as_view(), name="api-connection"),
    path(
        "api/connections/<uuid:connection_id>/rotate-secret/",
        api.ConnectionRotateSecretView.as_view(),
        name="api-connection-rotate-secret",
    ),
]
