"""A fake Zoom that follows the contracts in shared/docs/api-contracts.md.

OAuth (authorize page, token endpoint with rotation, revoke), the REST calls the broker makes
(/users/me, ZAK, OBF, local-recording join token), per-account rate limits, fault injection,
a sender of signed webhooks, and a control API under /_control/ for tests and the demo.

Run alone: python -m fakes.zoom --port 9100
"""

from .events import send_webhook, sign_webhook
from .server import FakeZoom

__all__ = ["FakeZoom", "send_webhook", "sign_webhook"]
