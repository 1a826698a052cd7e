"""Parsing Zoom meeting links, following Recall's published patterns."""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse


class MeetingUrlError(ValueError):
    pass


@dataclass(frozen=True)
class ZoomMeetingLink:
    url: str
    meeting_id: str  # numeric; empty for a /my/ personal link until resolved
    vanity: str = ""
    passcode: str = ""
    registration_token: str = ""
    is_webinar: bool = False


_HOST = re.compile(r"^(?:[a-z0-9-]+\.)*zoom\.(?:us|com)$", re.IGNORECASE)
_NUMERIC_PATH = re.compile(r"^/(?:j|s|w|wc/join|wc)/(\d{9,13})(?:/|$)", re.IGNORECASE)
_VANITY_PATH = re.compile(r"^/my/([\w.-]+)/?$", re.IGNORECASE)
_TEXT_PASSCODE = re.compile(r"\((?:Password|Passcode):\s*([^)\s]+)\)", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"https?://\S+", re.IGNORECASE)


# Zoom's passcodes are short, and its encrypted pwd= values about 32 characters; the column is 100.
MAX_PASSCODE = 100


def parse_zoom_url(text: str) -> ZoomMeetingLink:
    text = (text or "").strip()
    if not text:
        raise MeetingUrlError("Paste a Zoom meeting link.")
    found = _URL_IN_TEXT.search(text)
    url = found.group(0).rstrip(").,") if found else text
    if not url.lower().startswith(("http://", "https://")):
        url = "https://" + url
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    if host.endswith("zoomgov.com"):
        raise MeetingUrlError("ZoomGov meetings (zoomgov.com) are not supported by Recall.")
    if not _HOST.match(host):
        raise MeetingUrlError("That is not a Zoom link: expected an address on zoom.us or zoom.com.")
    query = {key: values[0] for key, values in parse_qs(parsed.query).items()}
    passcode = query.get("pwd", "")
    if not passcode:
        match = _TEXT_PASSCODE.search(text)
        passcode = match.group(1) if match else ""
    if len(passcode) > MAX_PASSCODE:
        raise MeetingUrlError(f"The passcode in this link is longer than {MAX_PASSCODE} characters: check the link.")
    numeric = _NUMERIC_PATH.match(parsed.path)
    if numeric:
        return ZoomMeetingLink(
            url=url,
            meeting_id=numeric.group(1),
            passcode=passcode,
            registration_token=query.get("tk", ""),
            is_webinar=parsed.path.lower().startswith("/w/"),
        )
    vanity = _VANITY_PATH.match(parsed.path)
    if vanity:
        return ZoomMeetingLink(url=url, meeting_id="", vanity=vanity.group(1), passcode=passcode)
    raise MeetingUrlError(
        "This Zoom link has no meeting number. Use an invite link such as https://zoom.us/j/123456789?pwd=..."
    )


def validate_zoom_meeting_url(value: str) -> None:
    """Form and serializer validator: the same message on the page, in the admin and in the API."""
    from django.core.exceptions import ValidationError

    try:
        parse_zoom_url(value)
    except MeetingUrlError as exc:
        raise ValidationError(str(exc)) from None
