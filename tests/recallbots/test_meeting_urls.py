import pytest

from recallbots.meeting_urls import MeetingUrlError, parse_zoom_url


@pytest.mark.parametrize(
    ("text", "meeting_id", "passcode"),
    [
        ("https://zoom.us/j/85012345678", "85012345678", ""),
        ("https://us02web.zoom.us/j/85012345678?pwd=AbC123.1", "85012345678", "AbC123.1"),
        ("https://acme.zoom.us/s/85012345678?from=addon&pwd=xyz", "85012345678", "xyz"),
        ("https://zoom.us/wc/join/85012345678", "85012345678", ""),
        ("https://zoom.com/j/123456789", "123456789", ""),
        ("us05web.zoom.us/j/85012345678", "85012345678", ""),
        ("Join: https://zoom.us/j/85012345678 (Passcode: 998877)", "85012345678", "998877"),
        ("https://zoom.us/w/91234567890?tk=REG&pwd=web", "91234567890", "web"),
    ],
)
def test_zoom_links_give_the_meeting_number_and_passcode(text, meeting_id, passcode):
    link = parse_zoom_url(text)
    assert (link.meeting_id, link.passcode) == (meeting_id, passcode)


def test_webinar_registration_token_is_kept():
    link = parse_zoom_url("https://zoom.us/w/91234567890?tk=REGTOKEN")
    assert link.is_webinar and link.registration_token == "REGTOKEN"


def test_personal_link_has_a_vanity_name_and_no_number():
    link = parse_zoom_url("https://acme.zoom.us/my/jane.doe")
    assert (link.meeting_id, link.vanity) == ("", "jane.doe")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Paste a Zoom meeting link"),
        ("https://meet.google.com/abc-defg-hij", "not a Zoom link"),
        ("https://zoom.us.evil.example/j/123456789", "not a Zoom link"),
        ("https://zoomgov.com/j/123456789", "ZoomGov"),
        ("https://zoom.us/j/abc", "no meeting number"),
        ("https://zoom.us/profile", "no meeting number"),
    ],
)
def test_bad_links_get_a_clear_error(text, message):
    with pytest.raises(MeetingUrlError, match=message):
        parse_zoom_url(text)
