"""gunicorn's logger, less the access line for token callbacks.

A token callback writes its own line (zoomauth.callbacks: kind, status, latency, Zoom calls,
address), after the answer has been sent. gunicorn's access line for the same request would be a
second line per callback, its query string run through the secret-masking regexes, on the path
that bots wait on. Every other request keeps gunicorn's access line.
"""

from gunicorn.glogging import Logger

CALLBACK_PREFIX = "/recall/callbacks/"


class BrokerLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO", "").startswith(CALLBACK_PREFIX):
            return
        super().access(resp, req, environ, request_time)
