"""Zoom's webhook signature: v0=HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")."""

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 5 * 60


class ZoomSignatureError(Exception):
    pass


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(*, secret: str, timestamp: str, signature: str, body: bytes, now: float | None = None) -> None:
    if not secret:
        raise ZoomSignatureError("no secret token configured for this app")
    if not timestamp or not signature:
        raise ZoomSignatureError("missing x-zm-request-timestamp or x-zm-signature")
    try:
        ts = int(timestamp)
    except ValueError:
        raise ZoomSignatureError("x-zm-request-timestamp is not a number") from None
    if ts > 10**11:  # milliseconds
        ts //= 1000
    if abs((now if now is not None else time.time()) - ts) > TOLERANCE_SECONDS:
        raise ZoomSignatureError("x-zm-request-timestamp is more than 5 minutes away")
    if not hmac.compare_digest(sign(secret=secret, timestamp=timestamp, body=body).encode(), signature.encode()):
        raise ZoomSignatureError("x-zm-signature does not match")


def url_validation_answer(*, secret: str, plain_token: str) -> dict:
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}
