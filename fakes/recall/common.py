"""What every part of the fake Recall shares: its regions, the limits it enforces, its clock
format and the Standard Webhooks signature it puts on what it sends."""

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime

REGIONS = ("us-west-2", "us-east-1", "api", "eu-central-1", "ap-northeast-1")
CALLBACK_TIMEOUT = 5.0
MIN_TOKEN_SECONDS = 120
ZOOM_URL_PARTS = ("zoom.us/", "zoom.com/")


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def standard_webhook_headers(secret: str, body: bytes, msg_id: str | None = None) -> dict[str, str]:
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": "v1," + signature.decode()}
