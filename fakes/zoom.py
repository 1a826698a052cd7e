"""A fake Zoom that follows the contracts in shared/docs/api-contracts.md.

OAuth (authorize page, token endpoint with rotation, revoke), the REST calls the broker makes
(/users/me, ZAK, OBF, local-recording join token), per-account rate limits, fault injection,
a sender of signed webhooks, and a control API under /_control/ for tests and the demo.

Run alone: python -m fakes.zoom --port 9100
"""

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from .http import DROP, FakeServer, Request, Response, json_response

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


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


class FakeZoom(FakeServer):
    name = "fake-zoom"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reset()
        r = self.route
        r("GET", "/oauth/authorize", self.authorize_page)
        r("POST", "/oauth/authorize", self.authorize_decide)
        r("POST", "/oauth/token", self.token)
        r("POST", "/oauth/revoke", self.revoke)
        r("GET", "/v2/users/me", self.users_me)
        r("GET", "/v2/users/me/token", self.user_token)
        r("GET", r"/v2/meetings/(?P<meeting_id>[^/]+)/jointoken/local_recording", self.join_token)
        r("POST", "/_control/reset", lambda req: self._ok(self.reset()))
        r("POST", "/_control/apps", self.control_app)
        r("POST", "/_control/users", self.control_user)
        r("POST", "/_control/meetings", self.control_meeting)
        r("POST", r"/_control/meetings/(?P<meeting_id>\d+)/(?P<action>join|leave|start|end)", self.control_presence)
        r("POST", "/_control/events/flush", self.control_flush)
        r("POST", "/_control/config", self.control_config)
        r("GET", r"/_control/meeting/(?P<meeting_id>\d+)", self.control_meeting_get)
        r("GET", "/_control/counters", lambda req: json_response(200, dict(self.counters)))
        r("POST", "/_control/introspect", self.control_introspect)
        r("POST", "/_control/consent", self.control_consent)
        r("POST", "/_control/send-webhook", self.control_send_webhook)
        r("POST", "/_control/expire-access-tokens", self.control_expire)

    # --- state --------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.apps: dict[str, dict] = {}
            self.users: dict[str, FakeUser] = {}
            self.meetings: dict[str, Meeting] = {}
            self.codes: dict[str, dict] = {}
            self.grants: dict[tuple[str, str], int] = {}  # (client_id, user_id) -> generation
            self.access_tokens: dict[str, dict] = {}
            self.refresh_tokens: dict[str, dict] = {}
            self.minted: dict[str, dict] = {}
            self.sent_refresh_tokens: set[str] = set()
            self.counters: dict[str, int] = {
                "token_exchange": 0,
                "refresh": 0,
                "refresh_success": 0,
                # POST /oauth/token with a refresh token that was already sent once (ever).
                "refresh_token_resent": 0,
                "invalid_grant": 0,
                "rate_limited": 0,
                "zak": 0,
                "obf": 0,
                "join_token": 0,
                "users_me": 0,
                "revoke": 0,
                "faults": 0,
            }
            self.config = {
                "access_token_ttl": 3599,
                "rate_limit_per_second": 0,  # calls per account per window; 0 = unlimited
                "rate_window_seconds": 1.0,
                "retry_after": "1",  # seconds, an HTTP date, or "" for no header
                "fail_next": 0,
                "fail_status": 500,
                "hang_next": 0,
                "hang_seconds": 10.0,
                "refresh_delay": 0.0,  # seconds before the refresh is done
                # Answer late or never, *after* the work is done (the refresh token rotated, the
                # token minted): what a slow or flaky Zoom looks like to its client.
                "refresh_answer_delay": 0.0,
                "refresh_drop_next": 0,
                # A dribbled refresh answer: rotated on receipt, the status line and headers sent
                # this many seconds after receipt, the body this many (0: at once).
                "refresh_status_at": 0.0,
                "refresh_body_at": 0.0,
                "mint_answer_delay": 0.0,
            }
            self.rate_window: dict[str, list[float]] = {}
            self.latency = 0.0
            # Meeting and participant events go to events_url, signed with events_secret (the
            # app's Secret Token), when both are set; held ones wait for a flush.
            self.events_url = ""
            self.events_secret = ""
            self.held_events: list[bytes] = []
            self.sent_events: list[dict] = []

    def _ok(self, _=None) -> Response:
        return json_response(200, {"ok": True})

    def _count(self, name: str) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    def _fault(self) -> Response | None:
        with self.lock:
            if self.config["hang_next"] > 0:
                self.config["hang_next"] -= 1
                hang = self.config["hang_seconds"]
            else:
                hang = 0
            if self.config["fail_next"] > 0:
                self.config["fail_next"] -= 1
                self.counters["faults"] += 1
                status = self.config["fail_status"]
                answer = zoom_error(status, status, "Internal server error, try again later.")
                if status == 429 and self.config["retry_after"]:
                    answer.headers["Retry-After"] = self.config["retry_after"]
                return answer
        if hang:
            # The caller has long given up; answer without touching state, as a gateway would.
            time.sleep(hang)
            return zoom_error(504, 504, "Gateway timeout.")
        return None

    def _rate_limited(self, account_id: str) -> Response | None:
        limit = self.config["rate_limit_per_second"]
        if not limit:
            return None
        now = time.time()
        with self.lock:
            span = self.config["rate_window_seconds"]
            window = [t for t in self.rate_window.get(account_id, []) if now - t < span]
            if len(window) >= limit:
                self.counters["rate_limited"] += 1
                self.rate_window[account_id] = window
                headers = {"Retry-After": self.config["retry_after"]} if self.config["retry_after"] else {}
                return Response(
                    429,
                    {"code": 429, "message": "You have reached the maximum per-second rate limit for this API."},
                    headers,
                )
            window.append(now)
            self.rate_window[account_id] = window
        return None

    # --- OAuth ------------------------------------------------------------------------------
    def _check_authorize(self, params: dict) -> str | None:
        app = self.apps.get(params.get("client_id", ""))
        if params.get("response_type") != "code":
            return "response_type must be code"
        if app is None:
            return "Invalid client_id"
        if params.get("redirect_uri") not in app["redirect_uris"]:
            return "Invalid redirect: the redirect URI does not match the app's allow list"
        if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
            return "Unsupported code_challenge_method"
        return None

    def authorize_page(self, req: Request) -> Response:
        problem = self._check_authorize(req.query)
        if problem:
            return Response(400, f"<h1>{html.escape(problem)}</h1>")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in req.query.items()
        )
        options = "".join(
            f'<li><button name="user_id" value="{html.escape(u.id)}">Allow as {html.escape(u.email)}</button></li>'
            for u in self.users.values()
        )
        page = (
            "<!doctype html><title>Fake Zoom: authorize</title><h1>Fake Zoom</h1>"
            f"<p>App <code>{html.escape(req.query['client_id'])}</code> asks for access. Pick a Zoom user:</p>"
            f'<form method="post" action="/oauth/authorize">{hidden}<ul>{options}</ul>'
            '<button name="deny" value="1">Decline</button></form>'
        )
        return Response(200, page)

    def authorize_decide(self, req: Request) -> Response:
        form = req.form
        problem = self._check_authorize(form)
        if problem:
            return Response(400, f"<h1>{html.escape(problem)}</h1>")
        state = form.get("state", "")
        if form.get("deny"):
            query = urlencode({"error": "access_denied", "state": state})
            return Response(302, b"", {"Location": f"{form['redirect_uri']}?{query}"})
        location = self.consent(
            client_id=form["client_id"],
            user_id=form.get("user_id", ""),
            redirect_uri=form["redirect_uri"],
            state=state,
            code_challenge=form.get("code_challenge", ""),
        )
        return Response(302, b"", {"Location": location})

    def consent(self, *, client_id: str, user_id: str, redirect_uri: str, state: str, code_challenge: str) -> str:
        with self.lock:
            if user_id not in self.users:
                raise KeyError(f"unknown fake Zoom user {user_id}")
            code = "code_" + secrets.token_urlsafe(24)
            self.codes[code] = {
                "client_id": client_id,
                "user_id": user_id,
                "redirect_uri": redirect_uri,
                "challenge": code_challenge,
                "expires": time.time() + CODE_TTL,
                "used": False,
            }
        return f"{redirect_uri}?{urlencode({'code': code, 'state': state})}"

    def _client(self, req: Request) -> tuple[dict | None, Response | None]:
        auth = req.basic_auth()
        app = self.apps.get(auth[0]) if auth else None
        if app is None or not hmac.compare_digest(app["secret"], auth[1]):
            return None, grant_error("Invalid client_id or client_secret", "invalid_client", 401)
        return app, None

    def _issue(self, client_id: str, user_id: str, scopes: str) -> dict:
        generation = self.grants.get((client_id, user_id), 0)
        access = "eyJ.fake-access." + secrets.token_urlsafe(24)
        refresh = "eyJ.fake-refresh." + secrets.token_urlsafe(24)
        ttl = self.config["access_token_ttl"]
        self.access_tokens[access] = {
            "client_id": client_id,
            "user_id": user_id,
            "generation": generation,
            "expires": time.time() + ttl,
            "scopes": scopes,
        }
        self.refresh_tokens[refresh] = {"client_id": client_id, "user_id": user_id, "generation": generation}
        return {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": ttl,
            "scope": scopes,
            "api_url": "https://api.zoom.us",
        }

    def token(self, req: Request) -> Response:
        if any(k in req.query for k in ("code", "refresh_token", "access_token")):
            return zoom_error(
                400, 124, "Invalid access token, this access token is not supported as query parameter string."
            )
        app, problem = self._client(req)
        if problem:
            return problem
        if not req.header("content-type").startswith("application/x-www-form-urlencoded"):
            return grant_error("Unsupported content type", "invalid_request")
        fault = self._fault()
        if fault:
            return fault
        form = req.form
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(app, form)
        if grant_type == "refresh_token":
            received = time.monotonic()
            delay = self.config["refresh_delay"]
            if delay:
                time.sleep(delay)
            answer = self._refresh(app, form)
            with self.lock:
                late, drop = self.config["refresh_answer_delay"], self.config["refresh_drop_next"] > 0
                if drop:
                    self.config["refresh_drop_next"] -= 1
            if late:
                time.sleep(late)
            if drop:
                return DROP
            status_at, body_at = self.config["refresh_status_at"], self.config["refresh_body_at"]
            if status_at or body_at:
                answer.head_at = received + status_at
                answer.body_at = received + max(body_at, status_at)
            return answer
        return grant_error("Unsupported grant type", "unsupported_grant_type")

    def _exchange(self, app: dict, form: dict) -> Response:
        self._count("token_exchange")
        with self.lock:
            entry = self.codes.get(form.get("code", ""))
            if entry is None or entry["used"] or entry["expires"] < time.time() or entry["client_id"] != app["id"]:
                self.counters["invalid_grant"] += 1
                return grant_error("Invalid authorization code")
            entry["used"] = True
            if form.get("redirect_uri") != entry["redirect_uri"]:
                self.counters["invalid_grant"] += 1
                return grant_error("Redirect URI mismatch")
            if entry["challenge"]:
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not hmac.compare_digest(digest, entry["challenge"]):
                    self.counters["invalid_grant"] += 1
                    return grant_error("Invalid code_verifier")
            key = (app["id"], entry["user_id"])
            # Re-authorising a user invalidates the tokens issued before.
            self.grants[key] = self.grants.get(key, 0) + 1
            user = self.users[entry["user_id"]]
            return json_response(200, self._issue(app["id"], user.id, user.scopes))

    def _refresh(self, app: dict, form: dict) -> Response:
        self._count("refresh")
        with self.lock:
            token = form.get("refresh_token", "")
            if token in self.sent_refresh_tokens:
                self.counters["refresh_token_resent"] += 1
            self.sent_refresh_tokens.add(token)
            entry = self.refresh_tokens.pop(token, None)  # single use: dies on first use
            if (
                entry is None
                or entry["client_id"] != app["id"]
                or entry["generation"] != self.grants.get((app["id"], entry["user_id"]))
            ):
                self.counters["invalid_grant"] += 1
                return grant_error("Invalid Token!")
            self.counters["refresh_success"] += 1
            user = self.users[entry["user_id"]]
            return json_response(200, self._issue(app["id"], user.id, user.scopes))

    def revoke(self, req: Request) -> Response:
        app, problem = self._client(req)
        if problem:
            return problem
        token = req.form.get("token", "")
        self._count("revoke")
        with self.lock:
            entry = self.access_tokens.get(token) or self.refresh_tokens.get(token)
            if entry is None:
                return grant_error("Invalid Token!", "invalid_request")
            key = (entry["client_id"], entry["user_id"])
            self.grants[key] = self.grants.get(key, 0) + 1  # the whole grant dies
        return json_response(200, {"status": "success"})

    # --- REST API ---------------------------------------------------------------------------
    def _bearer(self, req: Request, scopes: set[str]) -> tuple[dict | None, Response | None]:
        if "access_token" in req.query:
            return None, zoom_error(
                401, 124, "Invalid access token, this access token is not supported as query parameter string."
            )
        value = req.header("authorization")
        token = value[7:] if value.lower().startswith("bearer ") else ""
        with self.lock:
            entry = self.access_tokens.get(token)
            live = entry is not None and entry["generation"] == self.grants.get((entry["client_id"], entry["user_id"]))
        if not live:
            return None, zoom_error(401, 124, "Invalid access token.")
        if entry["expires"] < time.time():
            return None, zoom_error(401, 124, "Access token is expired.")
        if scopes and not scopes & set(entry["scopes"].split()):
            return None, zoom_error(400, 4711, f"Invalid access token, does not contain scopes:[{sorted(scopes)[0]}].")
        user = self.users[entry["user_id"]]
        limited = self._rate_limited(user.account_id)
        if limited:
            return None, limited
        fault = self._fault()
        if fault:
            return None, fault
        return entry, None

    def users_me(self, req: Request) -> Response:
        entry, problem = self._bearer(req, SCOPE_ME)
        if problem:
            return problem
        self._count("users_me")
        user = self.users[entry["user_id"]]
        return json_response(
            200,
            {
                "id": user.id,
                "account_id": user.account_id,
                "email": user.email,
                "pmi": int(user.pmi) if user.pmi else None,
                "type": 2,
                "status": "active",
            },
        )

    def _mint(self, kind: str, user_id: str, ttl: int, **extra) -> str:
        token = f"{kind}." + secrets.token_urlsafe(32)
        with self.lock:
            self.minted[token] = {
                "kind": kind,
                "user_id": user_id,
                "expires": time.time() + ttl,
                "used": False,
                **extra,
            }
        return token

    def user_token(self, req: Request) -> Response:
        kind = req.query.get("type", "token")
        if kind == "zak":
            entry, problem = self._bearer(req, SCOPE_ZAK)
            if problem:
                return problem
            self._count("zak")
            return self._late(json_response(200, {"token": self._mint("zak", entry["user_id"], ZAK_TTL)}))
        if kind == "onbehalf":
            entry, problem = self._bearer(req, SCOPE_OBF)
            if problem:
                return problem
            meeting_id = req.query.get("meeting_id", "")
            if meeting_id and meeting_id not in self.meetings:
                return zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}.")
            self._count("obf")
            token = self._mint("obf", entry["user_id"], OBF_TTL, meeting_id=meeting_id)
            return self._late(json_response(200, {"token": token}))
        return zoom_error(400, 300, "Invalid type.")

    def join_token(self, req: Request) -> Response:
        entry, problem = self._bearer(req, SCOPE_JOIN)
        if problem:
            return problem
        meeting = self.meetings.get(req.params["meeting_id"])
        if meeting is None:
            return zoom_error(404, 3001, f"Meeting does not exist: {req.params['meeting_id']}.")
        if meeting.host_id != entry["user_id"]:
            return zoom_error(400, 3000, "Only the meeting host can get a local recording join token.")
        self._count("join_token")
        bypass = req.query.get("bypass_waiting_room") == "true"
        token = self._mint("join_token", entry["user_id"], JOIN_TOKEN_TTL, meeting_id=meeting.id, bypass=bypass)
        return self._late(json_response(200, {"token": token, "expire_in": JOIN_TOKEN_TTL}))

    def _late(self, answer: Response) -> Response:
        """The token is minted; the answer leaves mint_answer_delay seconds later."""
        delay = self.config["mint_answer_delay"]
        if delay:
            time.sleep(delay)
        return answer

    # --- control API --------------------------------------------------------------------------
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

    def control_presence(self, req: Request) -> Response:
        """join / leave (body: user_id, or guest name and email) / start / end, with the event
        Zoom sends for it. Options: delay (seconds, sent late), twice, hold (kept for a flush)."""
        body = req.json() or {}
        action = req.params["action"]
        sent = self.meeting_action(
            req.params["meeting_id"],
            action,
            user_id=body.get("user_id", ""),
            guest_name=body.get("user_name", ""),
            guest_email=body.get("email", ""),
            delay=float(body.get("delay", 0) or 0),
            twice=bool(body.get("twice")),
            hold=bool(body.get("hold")),
            event_ts=body.get("event_ts"),
        )
        return json_response(200, {"ok": True, "event": sent})

    def meeting_event(
        self,
        meeting_id: str,
        action: str,
        *,
        user_id: str = "",
        guest_name: str = "",
        guest_email: str = "",
        event_ts: int | None = None,
    ) -> dict:
        """The event Zoom sends for an action, as its webhook payloads are shaped: participant.id is
        the Zoom user id of a signed-in user (empty for a guest), user_id the id in this meeting."""
        meeting = self.meetings[meeting_id]
        event_ts = int(event_ts or time.time() * 1000)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event_ts / 1000))
        name = {"join": "meeting.participant_joined", "leave": "meeting.participant_left"}.get(
            action, f"meeting.{action}ed" if action == "end" else "meeting.started"
        )
        obj = {
            "id": meeting.id,
            "uuid": base64.b64encode(hashlib.sha256(meeting.id.encode()).digest()[:16]).decode(),
            "host_id": meeting.host_id,
            "topic": meeting.topic,
            "type": 2,
            "start_time": at,
            "timezone": "UTC",
        }
        if action in ("join", "leave"):
            user = self.users.get(user_id)
            obj["participant"] = {
                "user_id": str(16778240 + abs(hash(user_id or guest_name)) % 100000),
                "user_name": user.email.split("@")[0] if user else guest_name or "Guest",
                "id": user.id if user else "",
                "participant_user_id": user.id if user else "",
                "participant_uuid": secrets.token_hex(8),
                "email": user.email if user else guest_email,
                ("join_time" if action == "join" else "leave_time"): at,
            }
        account = self.users[meeting.host_id].account_id if meeting.host_id in self.users else ""
        return {"event": name, "event_ts": event_ts, "payload": {"account_id": account, "object": obj}}

    def meeting_action(
        self,
        meeting_id: str,
        action: str,
        *,
        user_id: str = "",
        guest_name: str = "",
        guest_email: str = "",
        delay: float = 0.0,
        twice: bool = False,
        hold: bool = False,
        event_ts: int | None = None,
    ) -> dict:
        with self.lock:
            meeting = self.meetings[meeting_id]
            if action == "join":
                meeting.running = True
                if user_id:
                    meeting.participants.add(user_id)
            elif action == "leave":
                meeting.participants.discard(user_id)
            elif action == "start":
                meeting.running = True
            else:
                meeting.running = False
                meeting.participants.clear()
            event = self.meeting_event(
                meeting_id,
                action,
                user_id=user_id,
                guest_name=guest_name,
                guest_email=guest_email,
                event_ts=event_ts,
            )
        raw = json.dumps(event, separators=(",", ":")).encode()
        if hold:
            with self.lock:
                self.held_events += [raw] * (2 if twice else 1)
        elif self.events_url:
            self._send_event(raw, delay=delay, twice=twice)
        return event

    def _send_event(self, raw: bytes, *, delay: float = 0.0, twice: bool = False) -> None:
        def send():
            if delay:
                time.sleep(delay)
            for _ in range(2 if twice else 1):  # a retry from Zoom is the same bytes again
                status, _ = send_webhook(url=self.events_url, secret=self.events_secret, body=raw)
                with self.lock:
                    self.sent_events.append({"event": json.loads(raw)["event"], "status": status, "at": time.time()})

        if delay:
            threading.Thread(target=send, daemon=True).start()
        else:
            send()

    def control_flush(self, req: Request) -> Response:
        """Send the held events: in order, reversed or shuffled (Zoom's retries reorder them)."""
        order = (req.json() or {}).get("order", "as_is")
        return json_response(200, {"sent": self.flush_events(order=order, seed=(req.json() or {}).get("seed"))})

    def flush_events(self, *, order: str = "as_is", seed=None) -> int:
        import random

        with self.lock:
            held, self.held_events = self.held_events, []
        if order == "reverse":
            held.reverse()
        elif order == "shuffle":
            random.Random(seed).shuffle(held)
        for raw in held:
            self._send_event(raw)
        return len(held)

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

    def join(self, meeting_id: str, user_id: str, **options) -> dict:
        """The user joins (and Zoom sends participant_joined, when events_url is set)."""
        return self.meeting_action(meeting_id, "join", user_id=user_id, **options)

    def leave(self, meeting_id: str, user_id: str, **options) -> dict:
        return self.meeting_action(meeting_id, "leave", user_id=user_id, **options)

    def start_meeting(self, meeting_id: str, **options) -> dict:
        return self.meeting_action(meeting_id, "start", **options)

    def end_meeting(self, meeting_id: str, **options) -> dict:
        return self.meeting_action(meeting_id, "end", **options)

    def send_events_to(self, *, url: str, secret: str) -> None:
        with self.lock:
            self.events_url, self.events_secret = url, secret

    def configure(self, **values) -> None:
        with self.lock:
            self.config.update(values)


def send_webhook(*, url: str, secret: str, body: bytes, timestamp: str | None = None, sign: bool = True):
    timestamp = timestamp or str(int(time.time() * 1000))
    headers = {"Content-Type": "application/json; charset=utf-8", "x-zm-request-timestamp": timestamp}
    if sign:
        headers["x-zm-signature"] = sign_webhook(secret, timestamp, body)
    response = requests.post(url, data=body, headers=headers, timeout=10)
    return response.status_code, response.text


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake Zoom.")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    server = FakeZoom(port=args.port)
    print(f"fake Zoom on {server.base_url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    threading.current_thread().name = "fake-zoom"
    main()
