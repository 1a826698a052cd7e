"""OAuth: the authorize page, the token endpoint (code exchange, refresh with rotation, the
answers a slow Zoom gives) and revoke."""

import base64
import hashlib
import hmac
import html
import secrets
import time
from urllib.parse import urlencode

from ..http import DROP, Request, Response, json_response
from .state import CODE_TTL, grant_error, zoom_error


class OAuth:
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
