"""Staff in a real browser (Playwright driving Debian's Chromium) open the admin's overview, read
the figures of rows this test made, follow two of its links, and keep a screenshot under var/."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from accounts.models import User
from zoomauth.audit import audit_write
from zoomauth.models import CallbackLog, ZoomConnection

from .test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "correct horse battery staple"


def test_the_overview_in_a_browser(e2e):
    broker, fake_zoom, fake_recall, app = e2e
    User.objects.create_superuser(username="ops", email="ops@example.com", password=PASSWORD)
    owner = User.objects.create_user(username="cust-9", password=PASSWORD, external_user_id="cust-9")
    now = timezone.now()
    healthy = ZoomConnection.objects.create(
        user=owner, app=app, zoom_user_id="zu_ok", access_token_expires_at=now + timedelta(hours=1)
    )
    ZoomConnection.objects.create(
        user=owner,
        app=app,
        zoom_user_id="zu_lost",
        email="lost@zoom.example",
        status=ZoomConnection.Status.NEEDS_RECONNECT,
        needs_reconnect_since=now - timedelta(minutes=30),
        last_error="Zoom refused the refresh token (invalid_grant): the user must reconnect.",
    )
    audit_write(
        [CallbackLog(connection=healthy, kind="obf", status_code=200, outcome="token served", latency_ms=150)] * 6
        + [CallbackLog(connection=healthy, kind="obf", status_code=502, outcome="Zoom failed", latency_ms=900)] * 4
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(broker.url + "/admin/login/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.get_by_role("heading", name="Zoom connections")).to_be_visible()
        needs = page.locator('[data-figure="need-reconnect"] .ov-value')
        expect(needs).to_have_text("1")
        expect(page.locator("text=lost@zoom.example")).to_be_visible()
        obf = page.locator("tr", has=page.locator("td", has_text="obf"))
        expect(obf.locator("td").nth(1)).to_have_text("10")
        expect(obf.locator("td").nth(2)).to_have_text("60.0%")
        page.screenshot(path=str(SCREENSHOTS / "admin-overview.png"), full_page=True)

        page.click('[data-figure="need-reconnect"]')  # the list behind the figure
        expect(page.locator("#result_list")).to_contain_text("zu_lost")
        expect(page.locator("#result_list")).not_to_contain_text("zu_ok")

        page.go_back()
        obf.locator("td").nth(2).locator("a").click()  # the refused obf callbacks
        expect(page.locator("#result_list tbody tr")).to_have_count(4)
        expect(page.locator("#result_list")).to_contain_text("Zoom failed")
        browser.close()
