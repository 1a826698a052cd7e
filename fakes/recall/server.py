"""The fake Recall's server: its routes per region, its state reset, the checks every API call
passes (region, key, firewall, injected failures), its control API, and `main`
(python -m fakes.recall)."""

import threading
import time

from ..http import FakeServer, Request, Response, json_response
from .apps import OAuthApps
from .bots import Bots
from .common import REGIONS
from .credentials import Credentials


class FakeRecall(OAuthApps, Credentials, Bots, FakeServer):
    name = "fake-recall"

    def __init__(self, *args, zoom_base_url: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.zoom_base_url = zoom_base_url
        # Status webhooks on their way (see Bots.quiesce); a reset starts a new run, and bots of
        # an earlier run (their simulation threads go on) send nothing into the next test's world.
        self.run, self.sending = 0, 0
        self.idle = threading.Condition(self.lock)
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
            self.run += 1
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
                # Zoom events taken (and kept as received) whose answer waits until the test
                # calls release_held_webhooks(): Recall slow to answer after doing the work.
                "webhook_hold_next": 0,
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
            if getattr(self, "webhook_gate", None) is not None:
                self.webhook_gate.set()  # a held answer from an earlier test goes out now
            self.webhook_gate = threading.Event()

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

    def wait_for_webhook_receipts(self, count: int, timeout: float = 10.0) -> int:
        """Wait until `count` Zoom events were received (answered or held); returns how many."""
        deadline = time.time() + timeout
        while len(self.webhook_receipts) < count and time.time() < deadline:
            time.sleep(0.01)
        return len(self.webhook_receipts)

    def release_held_webhooks(self) -> None:
        with self.lock:
            self.webhook_gate.set()
            self.webhook_gate = threading.Event()

    def configure(self, **values) -> None:
        with self.lock:
            self.config.update(values)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fakes.recall", description="Run the fake Recall.")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--zoom", default="http://127.0.0.1:9100", help="the fake Zoom's base URL")
    args = parser.parse_args()
    server = FakeRecall(port=args.port, zoom_base_url=args.zoom)
    print(f"fake Recall on {server.base_url}/<region>", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
