from django.db.models import QuerySet

from zoomauth.models import ZoomConnection

# The reason every door gives for a connection outside the launch rule (the API's 400 included).
NOT_YOUR_CONNECTION = "No Zoom connection with this id belongs to you."


def connections_launchable_by(*, launcher) -> QuerySet[ZoomConnection]:
    """The launch rule of every door (the API, the launch page, the admin): the launcher's own
    connections; every connection with `launch_on_any_connection`. A join token from another
    host's connection also needs that host's opt-in (services.bot_zoom_config)."""
    connections = ZoomConnection.objects.select_related("app")
    if launcher.has_perm("recallbots.launch_on_any_connection"):
        return connections
    return connections.filter(user=launcher)
