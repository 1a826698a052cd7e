"""Meetings and their events: join, leave, start and end, each sent to the broker as Zoom sends
its webhooks (signed, late, twice, or held and flushed in another order)."""

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time

import requests

from ..http import Request, Response, json_response


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def send_webhook(*, url: str, secret: str, body: bytes, timestamp: str | None = None, sign: bool = True):
    timestamp = timestamp or str(int(time.time() * 1000))
    headers = {"Content-Type": "application/json; charset=utf-8", "x-zm-request-timestamp": timestamp}
    if sign:
        headers["x-zm-signature"] = sign_webhook(secret, timestamp, body)
    response = requests.post(url, data=body, headers=headers, timeout=10)
    return response.status_code, response.text


class Events:
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
        delay: float = 0.0,
        twice: bool = False,
        hold: bool = False,
        **who,
    ) -> dict:
        """Do `action` in the meeting and send (or hold) its event; `who` as for meeting_event."""
        user_id = who.get("user_id", "")
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
            event = self.meeting_event(meeting_id, action, **who)
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
