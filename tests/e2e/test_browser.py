"""A person in a real browser (Playwright driving Debian's Chromium): sign in, connect Zoom on the
fake Zoom's consent page, launch an OBF bot and watch it finish on the bot page."""

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.models import User

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_connect_and_launch_pages_in_a_browser(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    User.objects.create_user(username="alice", password="correct horse battery staple")
    fake_zoom.add_meeting(id="85000000009", host_id="zu_alice")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(broker.url + "/accounts/login/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "correct horse battery staple")
        page.click("button[type=submit]")
        expect(page.get_by_role("heading", name="Your Zoom connections")).to_be_visible()

        page.click("text=Connect a Zoom account")
        expect(page.get_by_role("heading", name="Fake Zoom")).to_be_visible()
        page.click("text=Allow as alice@zoom.example")
        expect(page.get_by_role("heading", name="Zoom connected")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "connected.png"))

        page.click("nav >> text=Launch a bot")
        page.fill("#id_meeting_url", "https://zoom.us/j/85000000009?pwd=abc")
        expect(page.locator("input[value=obf]")).to_be_checked()
        page.click("form button[type=submit]:has-text('Launch')")
        expect(page.locator("#bot-status")).to_be_visible()
        expect(page.locator("#bot-status")).to_have_text("in_waiting_room", timeout=20_000)
        fake_zoom.join("85000000009", "zu_alice")
        expect(page.locator("#bot-status")).to_have_text("done", timeout=30_000)  # the page refreshes itself
        page.screenshot(path=str(SCREENSHOTS / "bot-done.png"))
        browser.close()
