"""Verification of requests signed by Recall (Standard Webhooks, and the legacy svix-* headers).

Recall signs webhooks and, once a workspace verification secret exists, its token GETs too:
HMAC-SHA256 over "{id}.{timestamp}.{body}" (an empty body for a GET), keyed with the base64
part of the whsec_ secret; the header may carry several space-separated "v1,<sig>" entries.
"""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 5 * 60


class SignatureError(Exception):
    pass


class SignatureMissing(SignatureError):
    pass


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(f"webhook-{name}") or headers.get(f"svix-{name}") or ""


def has_signature_headers(headers: Mapping[str, str]) -> bool:
    return bool(_header(headers, "signature"))


def _key(secret: str) -> bytes:
    try:
        encoded = secret.removeprefix("whsec_")
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the configured Recall verification secret is not a valid whsec_ secret") from None


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes = b"") -> str:
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(*, secret: str, headers: Mapping[str, str], body: bytes = b"", now: float | None = None) -> str:
    """Check the signature; return the message id. Raises SignatureError with a short reason."""
    msg_id, timestamp, signatures = _header(headers, "id"), _header(headers, "timestamp"), _header(headers, "signature")
    if not (msg_id and timestamp and signatures):
        raise SignatureMissing("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a number") from None
    if abs((now if now is not None else time.time()) - ts) > TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is more than 5 minutes away")
    expected = sign(secret=secret, msg_id=msg_id, timestamp=ts, body=body).encode()
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return msg_id
    raise SignatureError("no signature matches")
