"""The fake Zoom's state: its users, grants and meetings, token lifetimes and scopes, and the
error bodies Zoom answers with."""

from dataclasses import dataclass, field

from ..http import Response, json_response

CODE_TTL = 300
ZAK_TTL = 7200
OBF_TTL = 1800
JOIN_TOKEN_TTL = 120

SCOPE_ZAK = {"user:read:zak", "user_zak:read", "user:read"}
SCOPE_OBF = {"user:read:token"}
SCOPE_ME = {"user:read:user", "user:read"}
SCOPE_JOIN = {
    "meeting:read:local_recording_token",
    "meeting:read:local_recording_token:admin",
    "meeting_token:read:local_recording",
}
DEFAULT_SCOPES = "user:read:user user:read:zak user:read:token meeting:read:local_recording_token"


@dataclass
class FakeUser:
    id: str
    email: str
    account_id: str
    pmi: str
    scopes: str = DEFAULT_SCOPES
    signed_out_at: float = 0.0


@dataclass
class Grant:
    client_id: str
    user_id: str
    generation: int
    scopes: str


@dataclass
class Meeting:
    id: str
    host_id: str
    requires_sign_in: bool = False
    participants: set = field(default_factory=set)
    running: bool = False
    topic: str = "Fake meeting"


def zoom_error(status: int, code: int, message: str) -> Response:
    return json_response(status, {"code": code, "message": message})


def grant_error(reason: str, error: str = "invalid_grant", status: int = 400) -> Response:
    return json_response(status, {"reason": reason, "error": error})
