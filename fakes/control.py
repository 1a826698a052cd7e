"""Clients for the fakes' control APIs, for when the fakes run as their own processes."""

import requests


class _Control:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def _post(self, path: str, body: dict | None = None) -> dict:
        response = self.http.post(self.base_url + path, json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def _get(self, path: str) -> dict:
        response = self.http.get(self.base_url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._post("/_control/reset")

    def configure(self, **values) -> None:
        self._post("/_control/config", values)


class FakeZoomControl(_Control):
    def add_app(self, *, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        self._post(
            "/_control/apps", {"client_id": client_id, "client_secret": client_secret, "redirect_uris": redirect_uris}
        )

    def add_user(self, *, id: str, email: str, pmi: str = "", **extra) -> None:
        self._post("/_control/users", {"id": id, "email": email, "pmi": pmi, **extra})

    def add_meeting(self, *, id: str, host_id: str, requires_sign_in: bool = False) -> None:
        self._post("/_control/meetings", {"id": id, "host_id": host_id, "requires_sign_in": requires_sign_in})

    def join(self, meeting_id: str, user_id: str = "", **options) -> dict:
        """The user joins, and Zoom sends participant_joined to events_url (if configured).
        Options as the fake takes them: user_name and email (a guest), delay, twice, hold, event_ts."""
        return self.meeting_action(meeting_id, "join", user_id=user_id, **options)

    def leave(self, meeting_id: str, user_id: str = "", **options) -> dict:
        return self.meeting_action(meeting_id, "leave", user_id=user_id, **options)

    def start_meeting(self, meeting_id: str, **options) -> dict:
        return self.meeting_action(meeting_id, "start", **options)

    def end_meeting(self, meeting_id: str, **options) -> dict:
        return self.meeting_action(meeting_id, "end", **options)

    def meeting_action(self, meeting_id: str, action: str, **body) -> dict:
        """The signed event the fake sent (or holds) for the action."""
        return self._post(f"/_control/meetings/{meeting_id}/{action}", body)["event"]

    def send_events_to(self, *, url: str, secret: str) -> None:
        self.configure(events_url=url, events_secret=secret)

    def flush_events(self, *, order: str = "as_is", seed=None) -> int:
        """Send the held events: as_is, reverse or shuffle (with seed)."""
        return self._post("/_control/events/flush", {"order": order, "seed": seed})["sent"]

    def meeting(self, meeting_id: str) -> dict:
        return self._get(f"/_control/meeting/{meeting_id}")

    def consent(self, **fields) -> str:
        """Zoom's consent screen, answered: the redirect (with code and state) Zoom would send."""
        return self._post("/_control/consent", fields)["location"]

    @property
    def counters(self) -> dict:
        return self._get("/_control/counters")


class FakeRecallControl(_Control):
    def state(self) -> dict:
        return self._get("/_control/state")

    @property
    def apps(self) -> dict:
        return {app["id"]: app for app in self.state()["apps"]}

    @property
    def credentials(self) -> dict:
        return {credential["id"]: credential for credential in self.state()["credentials"]}

    @property
    def bots(self) -> dict:
        return {bot["id"]: bot for bot in self.state()["bots"]}

    @property
    def webhook_receipts(self) -> list:
        return self.state()["webhook_receipts"]
