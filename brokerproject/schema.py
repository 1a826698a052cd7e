"""The OpenAPI schema view, safe under threaded workers.

drf-spectacular builds some class attributes lazily on first use; simultaneous first requests
in a fresh threaded process raced on them (7 of 8 answered 500). Generation is serialised per
process: the schema endpoint is for people and tools, not a hot path.
"""

import threading

from drf_spectacular.views import SpectacularAPIView


class SchemaView(SpectacularAPIView):
    _lock = threading.Lock()

    def _get_schema_response(self, request):
        with self._lock:
            return super()._get_schema_response(request)
