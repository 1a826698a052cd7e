"""The fake Zoom's server: its routes, its state reset, the faults it injects, and `main`
(python -m fakes.zoom)."""

import time

from ..http import FakeServer, Response, json_response
from .api import RestApi
from .control import Control
from .events import Events
from .oauth import OAuth
from .state import FakeUser, Meeting, zoom_error


class FakeZoom(OAuth, RestApi, Events, Control, FakeServer):
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


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fakes.zoom", description="Run the fake Zoom.")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    server = FakeZoom(port=args.port)
    print(f"fake Zoom on {server.base_url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
