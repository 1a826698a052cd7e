"""A process whose FIELD_ENCRYPTION_KEY cannot read the database must not serve anything that
needs the key: every request gets a 503 that says why (liveness and readiness excepted, so the
orchestrator sees the problem), whether or not the process was started by the entrypoint."""

import logging
import threading

from django.http import HttpResponse

from .models import EncryptionCanary

logger = logging.getLogger(__name__)

EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics")
MESSAGE = (
    "The broker cannot decrypt its data: FIELD_ENCRYPTION_KEY does not match the key the data was "
    "encrypted with. Set the right key (or add the old one after the new one) and restart."
)


class EncryptionKeyMiddleware:
    """Checks the encryption canary once per process, before the first request is served."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.lock = threading.Lock()
        self.verdict: bool | None = None

    def __call__(self, request):
        if request.path in EXEMPT_PATHS:
            return self.get_response(request)
        if self.verdict is None:
            with self.lock:
                if self.verdict is None:
                    self.verdict = self._key_works()
        if self.verdict is False:
            response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = "60"
            return response
        return self.get_response(request)

    @staticmethod
    def _key_works() -> bool | None:
        try:
            ok, detail = EncryptionCanary.verify_key()
        except Exception:  # the database is away: decide on a later request
            logger.exception("encryption canary could not be read")
            return None
        if not ok:
            logger.error("refusing to serve: %s", detail)
        return ok
