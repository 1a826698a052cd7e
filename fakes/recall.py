"""A fake Recall.ai that follows the contracts in shared/docs/api-contracts.md.

Regions are path prefixes of one server (base URL http://host:port/<region>), each with its own
API key. It has the firewall rule against 'localhost' in payloads, Zoom OAuth apps and their
webhook receiver (which re-verifies Zoom's signature over the bytes it gets), credentials in
both modes, and bots that GET their token URLs at join time, check the tokens with the fake
Zoom and report their status with Standard Webhooks signatures.

Run alone: python -m fakes.recall --port 9200 --zoom http://127.0.0.1:9100
"""

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import requests

from .http import DROP, FakeServer, Request, Response, json_response
from .zoom import sign_webhook

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


class FakeRecall(FakeServer):
    name = "fake-recall"

    def __init__(self, *args, zoom_base_url: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.zoom_base_url = zoom_base_url
        self.reset()
        prefix = r"/(?P<region>[a-z0-9-]+)/api"
        r = self.route
        r("POST", prefix + "/v2/zoom-oauth-apps/", self.app_create)
        r("GET", prefix + "/v2/zoom-oauth-apps/", self.app_list)
        r("GET", prefix + r"/v2/zoom-oauth-apps/(?P<id>[\w-]+)/", self.app_get)
        r("PATCH", prefix + r"/v2/zoom-oauth-apps/(?P<id>[\w-]+)/", self.app_patch)
        r("DELETE", prefix + r"/v2/zoom-oauth-apps/(?P<id>[\w-]+)/", self.app_delete)
        r("POST", prefix + r"/v2/zoom-oauth-apps/(?P<id>[\w-]+)/webhook", self.app_webhook)
        r("POST", prefix + "/v2/zoom-oauth-credentials/", self.credential_create)
        r("GET", prefix + "/v2/zoom-oauth-credentials/", self.credential_list)
        r("GET", prefix + r"/v2/zoom-oauth-credentials/(?P<id>[\w-]+)/", self.credential_get)
        r("DELETE", prefix + r"/v2/zoom-oauth-credentials/(?P<id>[\w-]+)/", self.credential_delete)
        r("GET", prefix + r"/v2/zoom-oauth-credentials/(?P<id>[\w-]+)/access-token/", self.credential_access_token)
        r("POST", prefix + "/v1/bot/", self.bot_create)
        r("GET", prefix + "/v1/bot/", self.bot_list)
        r("GET", prefix + r"/v1/bot/(?P<id>[\w-]+)/", self.bot_get)
        r("POST", "/_control/reset", lambda req: self._ok(self.reset()))
        r("POST", "/_control/config", self.control_config)
        r("GET", "/_control/state", self.control_state)

    def reset(self) -> None:
        with self.lock:
            self.keys = {region: "test-recall-key" for region in REGIONS}
            self.apps: dict[str, dict] = {}
            self.credentials: dict[str, dict] = {}
            self.bots: dict[str, dict] = {}
            self.webhook_receipts: list[dict] = []
            self.token_gets: list[dict] = []
            self.requests_log: list[dict] = []
            self.config = {
                "status_webhook_url": "",
                "verification_secret": "",
                "sign_token_requests": False,
                "fail_next": [],  # e.g. [429, 503, 507]: answers for the next calls, in order
                "retry_after": "0",
                "step_seconds": 0.3,
                "max_waiting_seconds": 15.0,
                "webhook_fail_next": [],  # statuses for the next webhook receipts
                # Zoom events taken (and kept as received) whose answer is then lost.
                "webhook_drop_next": 0,
                # Bot creation only: statuses for the next creates (e.g. [507] * 50: the pool is
                # empty for a while), and a create that is done but answered late or never.
                "bot_create_fail_next": [],
                "bot_create_answer_delay": 0.0,
                "bot_create_drop_next": 0,
                # Recall's bot list lags: a new bot shows in GET /api/v1/bot/ only this long after
                # its create (the issue saw 60 s).
                "bot_list_lag_seconds": 0.0,
                # OBF: Zoom refuses the join while the token's user is not in the meeting, and
                # each refused try emails the host; the bot tries again every this many seconds.
                "obf_retry_seconds": 0.25,
                # How long a bot stays in the call (None: step_seconds); it is removed earlier
                # when its OBF user leaves or the meeting ends, as Zoom does.
                "call_seconds": None,
            }
            # Per meeting: each refused OBF join ("someone is waiting to join" to the host).
            self.host_notified: dict[str, int] = {}
            self.threads: list[threading.Thread] = []

    def _ok(self, _=None) -> Response:
        return json_response(200, {"ok": True})

    # --- common checks ------------------------------------------------------------------------
    def _guard(self, req: Request) -> Response | None:
        with self.lock:
            self.requests_log.append({"method": req.method, "path": req.path})
        region = req.params.get("region", "")
        if region not in self.keys:
            return json_response(404, {"detail": "Unknown region."})
        if b"localhost" in req.body.lower():
            return Response(403, "<html><body><h1>403 Forbidden</h1>Request blocked.</body></html>")
        if req.method == "GET" and req.body:
            return Response(403, "<html><body><h1>403 Forbidden</h1>Request blocked.</body></html>")
        auth = req.header("authorization")
        if auth != f"Token {self.keys[region]}":
            return json_response(401, {"detail": "Invalid token."})
        with self.lock:
            if self.config["fail_next"]:
                status = self.config["fail_next"].pop(0)
                headers = {"Retry-After": self.config["retry_after"]} if self.config["retry_after"] else {}
                body = {"detail": "Request was throttled."} if status == 429 else {"detail": f"Error {status}"}
                return Response(status, body, headers)
        return None

    def _region_of(self, obj: dict, req: Request) -> bool:
        return obj.get("_region") == req.params["region"]

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # --- Zoom OAuth apps ----------------------------------------------------------------------
    def app_create(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        body = req.json()
        missing = [k for k in ("kind", "client_id", "client_secret", "webhook_secret") if not body.get(k)]
        if missing or body.get("kind") not in ("user_level", "account_level"):
            return json_response(400, {k: ["This field is required."] for k in missing} or {"kind": ["Invalid."]})
        app = {
            "id": str(uuid.uuid4()),
            "kind": body["kind"],
            "client_id": body["client_id"],
            "client_secret": body["client_secret"],
            "webhook_secret": body["webhook_secret"],
            "webhook_last_validation": None,
            "created_at": now_iso(),
            "_region": req.params["region"],
        }
        with self.lock:
            self.apps[app["id"]] = app
        return json_response(201, self._public(app))

    def app_list(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        results = [
            self._public(a)
            for a in self.apps.values()
            if self._region_of(a, req)
            and all(a.get(k) == v for k, v in req.query.items() if k in ("client_id", "kind"))
        ]
        return json_response(200, {"next": None, "previous": None, "results": results})

    def _app(self, req: Request) -> dict | None:
        app = self.apps.get(req.params["id"])
        return app if app and self._region_of(app, req) else None

    def app_get(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        app = self._app(req)
        return json_response(200, self._public(app)) if app else json_response(404, {"detail": "Not found."})

    def app_patch(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        app = self._app(req)
        if app is None:
            return json_response(404, {"detail": "Not found."})
        body = req.json()
        with self.lock:
            for key in ("client_secret", "webhook_secret"):
                if key in body:
                    app[key] = body[key]
        return json_response(200, self._public(app))

    def app_delete(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        with self.lock:
            app = self._app(req)
            if app is None:
                return json_response(404, {"detail": "Not found."})
            del self.apps[app["id"]]
        return Response(204, b"")

    def app_webhook(self, req: Request) -> Response:
        """Recall re-verifies Zoom's signature over the bytes it receives (no API key: Zoom calls it)."""
        app = self.apps.get(req.params["id"])
        if app is None:
            return json_response(404, {"detail": "Not found."})
        timestamp, signature = req.header("x-zm-request-timestamp"), req.header("x-zm-signature")
        valid = bool(timestamp and signature) and hmac.compare_digest(
            sign_webhook(app["webhook_secret"], timestamp, req.body), signature
        )
        with self.lock:
            fail = self.config["webhook_fail_next"].pop(0) if self.config["webhook_fail_next"] else None
            drop = not fail and self.config["webhook_drop_next"] > 0
            if drop:
                self.config["webhook_drop_next"] -= 1
            self.webhook_receipts.append(
                {
                    "app": app["id"],
                    "sha256": hashlib.sha256(req.body).hexdigest(),
                    "body": req.body.decode("utf-8", "replace"),
                    "timestamp": timestamp,
                    "signature_valid": valid,
                    "content_type": req.header("content-type"),
                    "answered": fail or ("dropped" if drop else 200 if valid else 401),
                    "received_at": time.time(),
                }
            )
        if drop:
            return DROP
        if fail:
            return json_response(fail, {"detail": "unavailable"})
        if not valid:
            return json_response(401, {"detail": "Invalid signature."})
        event = json.loads(req.body)
        if event.get("event") == "endpoint.url_validation":
            plain = event["payload"]["plainToken"]
            app["webhook_last_validation"] = now_iso()
            encrypted = hmac.new(app["webhook_secret"].encode(), plain.encode(), hashlib.sha256).hexdigest()
            return json_response(200, {"plainToken": plain, "encryptedToken": encrypted})
        return json_response(200, {})

    # --- credentials --------------------------------------------------------------------------
    def _introspect(self, kind: str, token: str, meeting_id: str = "", consume: bool = True) -> dict:
        response = requests.post(
            f"{self.zoom_base_url}/_control/introspect",
            json={"kind": kind, "token": token, "meeting_id": meeting_id, "consume": consume},
            timeout=5,
        )
        return response.json()

    def _fetch_callback(self, url: str, *, kind: str) -> tuple[int | None, str]:
        headers = {}
        if self.config["sign_token_requests"] and self.config["verification_secret"]:
            headers = standard_webhook_headers(self.config["verification_secret"], b"")
        try:
            response = requests.get(url, headers=headers, timeout=CALLBACK_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            with self.lock:
                self.token_gets.append({"kind": kind, "url": url, "status": None, "error": type(exc).__name__})
            return None, ""
        with self.lock:
            self.token_gets.append(
                {
                    "kind": kind,
                    "url": url,
                    "status": response.status_code,
                    "content_type": response.headers.get("Content-Type", ""),
                    "cache_control": response.headers.get("Cache-Control", ""),
                    "body_length": len(response.content),
                }
            )
        return response.status_code, response.text

    def _check_access_token_callback(self, url: str) -> tuple[dict | None, str]:
        status, body = self._fetch_callback(url, kind="access_token")
        if status != 200:
            return None, f"The access_token_callback_url answered {status}."
        info = self._introspect("access_token", body)
        if not info.get("valid"):
            return None, "The access_token_callback_url returned an invalid access token."
        if info["seconds_left"] < MIN_TOKEN_SECONDS:
            return None, f"Access token expires in {info['seconds_left']}s; at least {MIN_TOKEN_SECONDS}s are required."
        return info, ""

    def credential_create(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        body = req.json()
        app = self.apps.get(body.get("oauth_app", ""))
        if app is None or not self._region_of(app, req):
            return json_response(400, {"oauth_app": ["Invalid pk - object does not exist."]})
        has_url, has_code = bool(body.get("access_token_callback_url")), bool(body.get("authorization_code"))
        if has_url == has_code:
            return json_response(
                400, {"detail": "Provide exactly one of access_token_callback_url or authorization_code."}
            )
        tokens = None
        if has_url:
            info, error = self._check_access_token_callback(body["access_token_callback_url"])
            if info is None:
                return json_response(400, {"detail": error})
            user_id = info["user_id"]
        else:
            code = body["authorization_code"]
            form = {
                "grant_type": "authorization_code",
                "code": code.get("code", ""),
                "redirect_uri": code.get("redirect_uri", ""),
            }
            if code.get("code_verifier"):
                form["code_verifier"] = code["code_verifier"]
            response = requests.post(
                f"{self.zoom_base_url}/oauth/token", data=form, auth=(app["client_id"], app["client_secret"]), timeout=5
            )
            if response.status_code != 200:
                return json_response(400, {"detail": "Invalid Grant: the authorization code could not be exchanged."})
            tokens = response.json()
            user_id = self._introspect("access_token", tokens["access_token"])["user_id"]
        with self.lock:
            for existing in self.credentials.values():
                if existing["oauth_app"] == app["id"] and existing["user_id"] == user_id:
                    return json_response(
                        400,
                        {
                            "detail": "A Zoom OAuth Credential already exists for this OAuth App and Zoom account"
                            f"(user_id: {user_id}).",
                            "conflicting_zoom_user_id": user_id,
                        },
                    )
            credential = {
                "id": str(uuid.uuid4()),
                "oauth_app": app["id"],
                "user_id": user_id,
                "account_id": None,
                "access_token_callback_url": body.get("access_token_callback_url"),
                "created_at": now_iso(),
                "status": "healthy",
                "meeting_sync_status": "not_started",
                "_region": req.params["region"],
                "_tokens": tokens,
                "_tokens_at": time.time(),
            }
            self.credentials[credential["id"]] = credential
        return json_response(201, self._public(credential))

    def credential_list(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        filters = {k: v for k, v in req.query.items() if k in ("oauth_app", "user_id", "account_id", "status")}
        results = [
            self._public(c)
            for c in self.credentials.values()
            if self._region_of(c, req) and all(str(c.get(k)) == v for k, v in filters.items())
        ]
        return json_response(200, {"next": None, "previous": None, "results": results})

    def _credential(self, req: Request) -> dict | None:
        credential = self.credentials.get(req.params["id"])
        return credential if credential and self._region_of(credential, req) else None

    def credential_get(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        credential = self._credential(req)
        return (
            json_response(200, self._public(credential)) if credential else json_response(404, {"detail": "Not found."})
        )

    def credential_delete(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        with self.lock:
            credential = self._credential(req)
            if credential is None:
                return json_response(404, {"detail": "Not found."})
            del self.credentials[credential["id"]]
        return Response(204, b"")

    def credential_access_token(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        credential = self._credential(req)
        if credential is None:
            return json_response(404, {"detail": "Not found."})
        if credential["access_token_callback_url"]:
            status, body = self._fetch_callback(credential["access_token_callback_url"], kind="access_token")
            info = self._introspect("access_token", body) if status == 200 else {"valid": False}
            if not info.get("valid") or info["seconds_left"] < MIN_TOKEN_SECONDS:
                credential["status"] = "unhealthy"
                return json_response(400, {"detail": "The callback did not return a usable access token."})
            expires = datetime.now(UTC) + timedelta(seconds=info["seconds_left"])
            return json_response(200, {"token": body, "expires_at": expires.isoformat()})
        tokens = credential["_tokens"]
        left = tokens["expires_in"] - (time.time() - credential["_tokens_at"])
        if left < 300:
            app = self.apps[credential["oauth_app"]]
            response = requests.post(
                f"{self.zoom_base_url}/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                auth=(app["client_id"], app["client_secret"]),
                timeout=5,
            )
            if response.status_code != 200:
                credential["status"] = "unhealthy"
                return json_response(400, {"detail": "The Zoom grant is no longer valid."})
            credential["_tokens"], credential["_tokens_at"] = response.json(), time.time()
            tokens, left = credential["_tokens"], credential["_tokens"]["expires_in"]
        expires = datetime.now(UTC) + timedelta(seconds=left)
        return json_response(200, {"token": tokens["access_token"], "expires_at": expires.isoformat()})

    # --- bots ---------------------------------------------------------------------------------
    def bot_create(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        with self.lock:
            if self.config["bot_create_fail_next"]:
                status = self.config["bot_create_fail_next"].pop(0)
                headers = {"Retry-After": self.config["retry_after"]} if self.config["retry_after"] else {}
                return Response(status, {"detail": f"Error {status}"}, headers)
        body = req.json()
        meeting_url = body.get("meeting_url", "")
        if not any(part in meeting_url for part in ZOOM_URL_PARTS):
            return json_response(400, {"meeting_url": ["Invalid meeting URL."]})
        match = re.search(r"/(?:j|s|w|wc/join)/(\d+)", meeting_url)
        bot = {
            "id": str(uuid.uuid4()),
            "meeting_url": {"meeting_id": match.group(1) if match else None, "platform": "zoom"},
            "bot_name": body.get("bot_name", "Meeting Notetaker"),
            "join_at": body.get("join_at"),
            "metadata": body.get("metadata", {}),
            "status_changes": [],
            "_zoom": body.get("zoom", {}),
            "_automatic_leave": body.get("automatic_leave", {}),
            "_region": req.params["region"],
            "_observed": {},
            "_listed_from": time.time() + self.config["bot_list_lag_seconds"],
            "_received_at": time.time(),  # when the create came in (the benchmarks' clock)
        }
        with self.lock:
            self.bots[bot["id"]] = bot
        thread = threading.Thread(target=self._simulate, args=(bot,), daemon=True, name=f"bot-{bot['id'][:8]}")
        self.threads.append(thread)
        thread.start()
        with self.lock:
            late, drop = self.config["bot_create_answer_delay"], self.config["bot_create_drop_next"] > 0
            if drop:
                self.config["bot_create_drop_next"] -= 1
        if late:
            time.sleep(late)
        return DROP if drop else json_response(201, self._public(bot))

    def bot_list(self, req: Request) -> Response:
        """GET /api/v1/bot/ with metadata__KEY=VALUE filters (every pair must match)."""
        problem = self._guard(req)
        if problem:
            return problem
        wanted = {k[len("metadata__") :]: v for k, v in req.query.items() if k.startswith("metadata__")}
        with self.lock:
            found = [
                self._public(bot)
                for bot in self.bots.values()
                if self._region_of(bot, req)
                and bot["_listed_from"] <= time.time()
                and all(bot["metadata"].get(k) == v for k, v in wanted.items())
            ]
        return json_response(200, {"next": None, "previous": None, "results": found})

    def bot_get(self, req: Request) -> Response:
        problem = self._guard(req)
        if problem:
            return problem
        bot = self.bots.get(req.params["id"])
        return json_response(200, self._public(bot)) if bot else json_response(404, {"detail": "Not found."})

    def _status(self, bot: dict, code: str, sub_code: str | None = None) -> None:
        change = {"code": code, "sub_code": sub_code, "created_at": now_iso(), "message": None}
        with self.lock:
            bot["status_changes"].append(change)
            bot.setdefault("_webhook_ids", []).append("msg_" + uuid.uuid4().hex)
        self._deliver(bot, len(bot["status_changes"]) - 1)

    def redeliver(self, bot_id: str) -> None:
        """Recall retries the status webhooks it could not deliver (same webhook ids): each of
        the bot's status changes is sent again, in order."""
        for index in range(len(self.bots[bot_id]["status_changes"])):
            self._deliver(self.bots[bot_id], index)

    def _deliver(self, bot: dict, index: int) -> None:
        change, msg_id = bot["status_changes"][index], bot["_webhook_ids"][index]
        code, sub_code = change["code"], change["sub_code"]
        url, secret = self.config["status_webhook_url"], self.config["verification_secret"]
        if not url:
            return
        event = {
            "event": f"bot.{code}",
            "data": {
                "data": {"code": code, "sub_code": sub_code, "updated_at": change["created_at"]},
                "bot": {"id": bot["id"], "metadata": bot["metadata"]},
            },
        }
        raw = json.dumps(event).encode()
        signed = standard_webhook_headers(secret, raw, msg_id) if secret else {}
        headers = {"Content-Type": "application/json", **signed}
        for _ in range(3):  # Recall retries failed deliveries
            try:
                if requests.post(url, data=raw, headers=headers, timeout=15).status_code < 300:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)

    def _token_from(self, bot: dict, key: str, kind: str, meeting_id: str) -> tuple[str, str]:
        """GET a token URL like a bot does; return (outcome, token)."""
        status, body = self._fetch_callback(bot["_zoom"][key], kind=kind)
        if status != 200:
            bot["_observed"][kind] = {"status": status}
            return "unavailable", ""
        bot["_observed"][kind] = {"status": status, "body_length": len(body)}
        return "ok", body

    def _simulate(self, bot: dict) -> None:
        step = self.config["step_seconds"]
        zoom_config = bot["_zoom"]
        meeting_id = bot["meeting_url"]["meeting_id"] or ""
        time.sleep(step)
        self._status(bot, "joining_call")
        meeting = self._meeting(meeting_id)
        if meeting is None:
            self._status(bot, "fatal", "meeting_not_found")
            return
        signed_in = False
        if "zak_url" in zoom_config:
            outcome, token = self._token_from(bot, "zak_url", "zak", meeting_id)
            if outcome == "ok":
                if not self._introspect("zak", token, meeting_id).get("valid"):
                    self._status(bot, "fatal", "zoom_invalid_signature")
                    return
                signed_in = True
        if meeting.get("requires_sign_in") and not signed_in:
            self._status(bot, "fatal", "meeting_requires_sign_in")
            return
        obf_user = None
        if "obf_token_url" in zoom_config:
            outcome, token = self._token_from(bot, "obf_token_url", "obf", meeting_id)
            if outcome != "ok":
                self._status(bot, "fatal", "zoom_meeting_not_accessible")
                return
            limit = min(
                float(bot["_automatic_leave"].get("waiting_room_timeout", 0) or 0), self.config["max_waiting_seconds"]
            )
            obf_user = self._obf_join(bot, token, meeting_id, limit)
            if obf_user is None:
                return
        recording = False
        if "join_token_url" in zoom_config:
            outcome, token = self._token_from(bot, "join_token_url", "join_token", meeting_id)
            if outcome == "ok":
                if not self._introspect("join_token", token, meeting_id).get("valid"):
                    self._status(bot, "fatal", "zoom_invalid_join_token")
                    return
                recording = True
        time.sleep(step)
        self._status(
            bot, "in_call_recording" if recording or "obf_token_url" in zoom_config else "in_call_not_recording"
        )
        with self.lock:
            bot["_in_call"] = [time.time(), None]
        sub_code = self._stay_in_call(meeting_id, obf_user)
        with self.lock:
            bot["_in_call"][1] = time.time()
        self._status(bot, "call_ended", sub_code)
        time.sleep(step)
        self._status(bot, "done")

    def _obf_join(self, bot: dict, token: str, meeting_id: str, limit: float) -> str | None:
        """Join with an OBF token: Zoom lets the bot in only while the token's user is in the
        meeting; every refused try notifies the host. Returns the OBF user, or None (ended)."""
        waited = 0.0
        while True:
            verdict = self._introspect("obf", token, meeting_id, consume=False)
            if verdict.get("valid"):
                self._introspect("obf", token, meeting_id, consume=True)
                return verdict["user_id"]
            if verdict.get("reason") != "user_not_in_meeting":
                self._status(bot, "fatal", "zoom_invalid_signature")
                return None
            with self.lock:
                self.host_notified[meeting_id] = self.host_notified.get(meeting_id, 0) + 1
                bot["_obf_refused"] = bot.get("_obf_refused", 0) + 1
            if waited == 0.0:
                self._status(bot, "in_waiting_room")
            if waited >= limit:
                self._status(bot, "call_ended", "timeout_exceeded_waiting_room")
                self._status(bot, "done")
                return None
            pause = self.config["obf_retry_seconds"]
            time.sleep(pause)
            waited += pause

    def _stay_in_call(self, meeting_id: str, obf_user: str | None) -> str:
        """In the call until call_seconds pass (the host ends it), or Zoom removes the bot: its
        OBF user left, or the meeting ended."""
        seconds = self.config["call_seconds"]
        deadline = time.time() + (self.config["step_seconds"] if seconds is None else seconds)
        while True:
            meeting = self._meeting(meeting_id) or {}
            if obf_user is not None and obf_user not in meeting.get("participants", []):
                return "authorized_user_left_meeting"
            if seconds is not None and meeting.get("running") is False and meeting.get("participants") == []:
                return "call_ended_by_host"
            if time.time() >= deadline:
                return "call_ended_by_host"
            time.sleep(min(0.1, max(0.0, deadline - time.time())))

    def _meeting(self, meeting_id: str) -> dict | None:
        """Ask the fake Zoom whether the meeting exists (through its public state)."""
        response = requests.get(f"{self.zoom_base_url}/_control/meeting/{meeting_id}", timeout=5)
        return response.json() if response.status_code == 200 else None

    # --- control --------------------------------------------------------------------------------
    def control_config(self, req: Request) -> Response:
        with self.lock:
            body = req.json()
            if "keys" in body:
                self.keys.update(body.pop("keys"))
            self.config.update(body)
        return self._ok()

    def control_state(self, req: Request) -> Response:
        with self.lock:
            return json_response(
                200,
                {
                    "apps": [self._public(a) for a in self.apps.values()],
                    "credentials": [self._public(c) for c in self.credentials.values()],
                    "bots": [
                        {
                            **self._public(b),
                            "observed": b["_observed"],
                            "in_call": b.get("_in_call"),
                            "received_at": b.get("_received_at"),
                        }
                        for b in self.bots.values()
                    ],
                    "webhook_receipts": self.webhook_receipts,
                    "token_gets": self.token_gets,
                    "host_notified": self.host_notified,
                },
            )

    def configure(self, **values) -> None:
        with self.lock:
            self.config.update(values)

    def wait_for_bot(self, bot_id: str, code: str, timeout: float = 30.0) -> list[str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            codes = [c["code"] for c in self.bots[bot_id]["status_changes"]]
            if code in codes or "fatal" in codes:
                return codes
            time.sleep(0.1)
        return [c["code"] for c in self.bots[bot_id]["status_changes"]]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake Recall.")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--zoom", default="http://127.0.0.1:9100", help="the fake Zoom's base URL")
    args = parser.parse_args()
    server = FakeRecall(port=args.port, zoom_base_url=args.zoom)
    print(f"fake Recall on {server.base_url}/<region>", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
