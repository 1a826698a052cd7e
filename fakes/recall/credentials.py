"""Zoom OAuth credentials in both modes: the broker's access-token callback (fetched and checked
with the fake Zoom) or an authorization code Recall exchanges and refreshes itself."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import requests

from ..http import Request, Response, json_response
from .common import CALLBACK_TIMEOUT, MIN_TOKEN_SECONDS, now_iso, standard_webhook_headers


class Credentials:
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
