"""When a request reached this process: a token callback's budget counts from here, not from its
view, so the time a busy host spends before the view (middleware, a thread waiting for the CPU)
is inside the 5 s Recall waits. brokerproject.wsgi wraps the application with stamp_arrival."""

import time

# The environ key (request.META in Django) holding the arrival, as time.monotonic().
ARRIVED_AT = "broker.arrived_at"


def stamp_arrival(app):
    """Note the request's arrival as the first thing the process does with it."""

    def stamped(environ, start_response):
        environ.setdefault(ARRIVED_AT, time.monotonic())
        return app(environ, start_response)

    return stamped


def arrived_at(meta) -> float | None:
    return meta.get(ARRIVED_AT)
