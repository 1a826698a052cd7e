"""Bots: created, listed (with Recall's lag), and simulated in a thread of their own: they GET
their token URLs at join time, check the tokens with the fake Zoom, wait for their OBF user, and
report each status with a signed webhook."""

import json
import re
import threading
import time
import uuid

import requests

from ..http import DROP, Request, Response, json_response
from .common import ZOOM_URL_PARTS, now_iso, standard_webhook_headers


class Bots:
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
            "_run": self.run,
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

    def quiesce(self, timeout: float = 20.0) -> bool:
        """No more status webhooks from now on (until configured again), and the ones on their way
        answered: a test's end, before its database is emptied under the broker that receives
        them. False if some were still on their way after `timeout` seconds."""
        with self.lock:
            self.config["status_webhook_url"] = ""
            return self.idle.wait_for(lambda: self.sending == 0, timeout=timeout)

    def _deliver(self, bot: dict, index: int) -> None:
        with self.lock:
            url, secret = self.config["status_webhook_url"], self.config["verification_secret"]
            if not url or bot.get("_run") != self.run:
                return
            self.sending += 1
        try:
            self._send_status(bot, index, url, secret)
        finally:
            with self.lock:
                self.sending -= 1
                self.idle.notify_all()

    def _send_status(self, bot: dict, index: int, url: str, secret: str) -> None:
        change, msg_id = bot["status_changes"][index], bot["_webhook_ids"][index]
        code, sub_code = change["code"], change["sub_code"]
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

    def wait_for_bot(self, bot_id: str, code: str, timeout: float = 30.0) -> list[str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            codes = [c["code"] for c in self.bots[bot_id]["status_changes"]]
            if code in codes or "fatal" in codes:
                return codes
            time.sleep(0.1)
        return [c["code"] for c in self.bots[bot_id]["status_changes"]]
