"""The REST calls the broker makes: /users/me, the ZAK and OBF tokens, the local-recording join
token; per-account rate limits and answers sent late after the token is minted."""

import secrets
import time

from ..http import Request, Response, json_response
from .state import JOIN_TOKEN_TTL, OBF_TTL, SCOPE_JOIN, SCOPE_ME, SCOPE_OBF, SCOPE_ZAK, ZAK_TTL, zoom_error


class RestApi:
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
