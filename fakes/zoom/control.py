"""The control API under /_control/ and its Python twins: apps, users and meetings set up, the
configuration (faults, delays, limits) changed, tokens introspected for the fake Recall."""

import json
import time

from ..http import Request, Response, json_response
from .events import send_webhook
from .state import DEFAULT_SCOPES, FakeUser, Meeting, zoom_error


class Control:
    def control_app(self, req: Request) -> Response:
        body = req.json()
        with self.lock:
            self.apps[body["client_id"]] = {
                "id": body["client_id"],
                "secret": body["client_secret"],
                "redirect_uris": set(body.get("redirect_uris", [])),
            }
        return self._ok()

    def control_user(self, req: Request) -> Response:
        body = req.json()
        with self.lock:
            user = FakeUser(
                id=body["id"],
                email=body["email"],
                account_id=body.get("account_id", "acct_" + body["id"]),
                pmi=str(body.get("pmi", "")),
                scopes=body.get("scopes", DEFAULT_SCOPES),
            )
            self.users[user.id] = user
        return self._ok()

    def control_meeting(self, req: Request) -> Response:
        body = req.json()
        with self.lock:
            self.meetings[str(body["id"])] = Meeting(
                id=str(body["id"]), host_id=body["host_id"], requires_sign_in=body.get("requires_sign_in", False)
            )
        return self._ok()

    def control_meeting_get(self, req: Request) -> Response:
        meeting = self.meetings.get(req.params["meeting_id"])
        if meeting is None:
            return zoom_error(404, 3001, "Meeting does not exist.")
        return json_response(
            200,
            {
                "id": meeting.id,
                "host_id": meeting.host_id,
                "requires_sign_in": meeting.requires_sign_in,
                "participants": sorted(meeting.participants),
                "running": meeting.running,
            },
        )

    def control_config(self, req: Request) -> Response:
        with self.lock:
            body = req.json()
            self.events_url = body.pop("events_url", self.events_url)
            self.events_secret = body.pop("events_secret", self.events_secret)
            self.config.update(body)
            self.latency = float(self.config.get("latency", self.latency))
        return self._ok()

    def control_expire(self, req: Request) -> Response:
        """Pretend time passed: access tokens of a user now have `seconds_left` to live."""
        body = req.json()
        with self.lock:
            for entry in self.access_tokens.values():
                if entry["user_id"] == body["user_id"]:
                    entry["expires"] = time.time() + body.get("seconds_left", 0)
        return self._ok()

    def control_consent(self, req: Request) -> Response:
        body = req.json()
        location = self.consent(
            client_id=body["client_id"],
            user_id=body["user_id"],
            redirect_uri=body["redirect_uri"],
            state=body.get("state", ""),
            code_challenge=body.get("code_challenge", ""),
        )
        return json_response(200, {"location": location})

    def control_introspect(self, req: Request) -> Response:
        """What Zoom would decide when a bot presents a token: used by the fake Recall."""
        body = req.json()
        kind, token, meeting_id = body["kind"], body.get("token", ""), str(body.get("meeting_id", ""))
        consume = body.get("consume", True)
        now = time.time()
        with self.lock:
            if kind == "access_token":
                entry = self.access_tokens.get(token)
                live = entry is not None and entry["generation"] == self.grants.get(
                    (entry["client_id"], entry["user_id"])
                )
                if not live or entry["expires"] < now:
                    return json_response(200, {"valid": False, "reason": "invalid or expired access token"})
                return json_response(
                    200,
                    {
                        "valid": True,
                        "user_id": entry["user_id"],
                        "client_id": entry["client_id"],
                        "seconds_left": int(entry["expires"] - now),
                    },
                )
            entry = self.minted.get(token)
            if entry is None or entry["kind"] != kind:
                return json_response(200, {"valid": False, "reason": f"not a {kind} token"})
            if entry["expires"] < now:
                return json_response(200, {"valid": False, "reason": "expired"})
            if kind == "zak":
                user = self.users[entry["user_id"]]
                return json_response(200, {"valid": True, "user_id": user.id})
            if entry.get("meeting_id") and entry["meeting_id"] != meeting_id:
                return json_response(200, {"valid": False, "reason": "token is for another meeting"})
            if entry["used"]:
                return json_response(200, {"valid": False, "reason": "already used"})
            if kind == "obf":
                meeting = self.meetings.get(meeting_id)
                if meeting is None or entry["user_id"] not in meeting.participants:
                    return json_response(200, {"valid": False, "reason": "user_not_in_meeting", "retry": True})
            if consume:
                entry["used"] = True
            return json_response(200, {"valid": True, "user_id": entry["user_id"], "bypass": entry.get("bypass")})

    def control_send_webhook(self, req: Request) -> Response:
        """Send a Zoom-signed event to a URL, the way Zoom does (v0 HMAC over the raw body)."""
        body = req.json()
        raw = body.get("raw")
        payload = raw.encode() if isinstance(raw, str) else json.dumps(body["event"], separators=(",", ":")).encode()
        status, text = send_webhook(
            url=body["url"],
            secret=body["secret"],
            body=payload,
            timestamp=body.get("timestamp"),
            sign=body.get("sign", True),
        )
        return json_response(200, {"status": status, "body": text})

    # --- helpers for Python callers -----------------------------------------------------------
    def add_app(self, *, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        self.apps[client_id] = {"id": client_id, "secret": client_secret, "redirect_uris": set(redirect_uris)}

    def add_user(
        self, *, id: str, email: str, pmi: str = "", scopes: str = DEFAULT_SCOPES, account_id: str = ""
    ) -> None:
        self.users[id] = FakeUser(id=id, email=email, account_id=account_id or f"acct_{id}", pmi=pmi, scopes=scopes)

    def add_meeting(self, *, id: str, host_id: str, requires_sign_in: bool = False) -> None:
        self.meetings[id] = Meeting(id=id, host_id=host_id, requires_sign_in=requires_sign_in)

    def configure(self, **values) -> None:
        with self.lock:
            self.config.update(values)
