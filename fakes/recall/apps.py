"""Zoom OAuth apps at Recall and their webhook receiver, which re-verifies Zoom's signature over
the bytes it gets (and can fail, or take an event and lose the answer)."""

import hashlib
import hmac
import json
import time
import uuid

from ..http import DROP, Request, Response, json_response
from ..zoom import sign_webhook
from .common import now_iso


class OAuthApps:
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
            hold = self.config["webhook_hold_next"] > 0
            if hold:
                self.config["webhook_hold_next"] -= 1
            gate = self.webhook_gate
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
        if hold:
            gate.wait(timeout=30)
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
