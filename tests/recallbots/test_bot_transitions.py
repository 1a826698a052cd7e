"""Bot.status declares Bot.Status as its choices, yet a code Recall adds later is stored and
shown as it is: over the signed webhook, in the API, on the admin's list, filter and page."""

import ast
import base64
import json
import re
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import ApiToken
from fakes.recall import standard_webhook_headers
from recallbots.models import Bot, BotStatusChange

NEW_CODE = "recording_permission_allowed"  # not in Bot.Status


@pytest.fixture(autouse=True)
def _recall_secret(settings):
    settings.RECALL_VERIFICATION_SECRET = "whsec_" + base64.b64encode(b"transitions-secret").decode()


def post_status(settings, *, recall_id: str, code: str, updated_at: str, webhook_id: str = "msg_new"):
    body = json.dumps(
        {
            "event": f"bot.{code}",
            "data": {"data": {"code": code, "sub_code": None, "updated_at": updated_at}, "bot": {"id": recall_id}},
        }
    ).encode()
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v
        for k, v in standard_webhook_headers(settings.RECALL_VERIFICATION_SECRET, body, msg_id=webhook_id).items()
    }
    return Client().post("/recall/webhooks/bot-status/", body, content_type="application/json", **headers)


def test_a_status_code_recall_added_later_is_stored_and_shown_as_it_is(settings, staff, client, api_client):
    assert NEW_CODE not in Bot.Status.values
    bot = Bot.objects.create(user=staff, meeting_url="https://zoom.us/j/1", meeting_id="1", recall_id="rb_new")
    answer = post_status(settings, recall_id="rb_new", code=NEW_CODE, updated_at="2026-11-24T10:00:00Z")
    assert answer.status_code == 200, answer.content
    bot.refresh_from_db()
    assert bot.status == NEW_CODE and not bot.is_final
    assert list(BotStatusChange.objects.filter(bot=bot).values_list("code", flat=True)) == [NEW_CODE]

    _, raw = ApiToken.issue(user=staff, name="backend")
    shown = api_client.get(f"/api/bots/{bot.public_id}/", HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert shown["status"] == NEW_CODE

    client.force_login(staff)
    changelist = client.get("/admin/recallbots/bot/").content.decode()
    assert re.search(rf'<td class="field-status\w*">{NEW_CODE}</td>', changelist)
    assert f"?status={NEW_CODE}" in changelist  # the filter offers every stored code
    filtered = client.get(f"/admin/recallbots/bot/?status={NEW_CODE}").content.decode()
    assert "1 bot" in filtered
    page = client.get(f"/admin/recallbots/bot/{bot.pk}/change/").content.decode()
    assert f'<div class="readonly">{NEW_CODE}</div>' in page


def test_a_known_status_is_shown_as_its_code_as_before(settings, staff, client):
    Bot.objects.create(user=staff, meeting_url="https://zoom.us/j/1", recall_id="rb_done", status=Bot.Status.DONE)
    client.force_login(staff)
    changelist = client.get("/admin/recallbots/bot/").content.decode()
    assert re.search(r'<td class="field-status\w*">done</td>', changelist)


def test_an_older_status_after_a_newer_one_is_recorded_but_not_taken(settings, staff):
    bot = Bot.objects.create(user=staff, meeting_url="https://zoom.us/j/1", recall_id="rb_order")
    post_status(settings, recall_id="rb_order", code="in_call_recording", updated_at="2026-11-24T10:05:00Z")
    post_status(settings, recall_id="rb_order", code="joining_call", updated_at="2026-11-24T10:00:00Z", webhook_id="m2")
    bot.refresh_from_db()
    assert bot.status == "in_call_recording"
    assert list(bot.status_changes.values_list("code", flat=True)) == ["joining_call", "in_call_recording"]


def test_final_statuses_are_declared_once():
    assert not hasattr(Bot, "FINAL_STATUSES")
    assert set(Bot.Status.final()) <= set(Bot.Status.values)
    assert Bot(status=Bot.Status.DONE).is_final and not Bot(status=Bot.Status.QUEUED).is_final


# --- nothing but the model writes a bot's state -------------------------------------------------

STATE = {
    *("status", "sub_code", "status_updated_at", "last_error", "queued_payload", "recall_id"),
    *("launch_next_attempt_at", "launch_claim_holder", "launch_attempts", "launch_ambiguous_at"),
    *("wait_until", "handed_off_at"),
}
BOT_NAMES = {"bot", "successor", "launch", "duplicate"}


def state_writes(source: str, filename: str) -> list[str]:
    """Writes of a bot's state fields: through Bot.objects (update, create with a state),
    BotStatusChange.objects, an assignment to bot.<field>, or bot.save(update_fields=[<field>])."""
    tree = ast.parse(source, filename=filename)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            chain = ast.unparse(node.func.value)
            keywords = {keyword.arg for keyword in node.keywords}
            if "BotStatusChange.objects" in chain and node.func.attr in {"create", "bulk_create", "update"}:
                found.append(f"{filename}:{node.lineno} {ast.unparse(node.func)}")
            elif "Bot.objects" in chain and node.func.attr in {"update", "create", "update_or_create"}:
                if keywords & STATE:
                    found.append(f"{filename}:{node.lineno} {ast.unparse(node.func)}({sorted(keywords & STATE)})")
            elif node.func.attr == "save" and chain in BOT_NAMES:
                fields = next((k.value for k in node.keywords if k.arg == "update_fields"), None)
                if fields is None or {getattr(e, "value", None) for e in getattr(fields, "elts", [])} & STATE:
                    found.append(f"{filename}:{node.lineno} {chain}.save")
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        )
        for target in targets:
            for one in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(one, ast.Attribute) and one.attr in STATE and ast.unparse(one.value) in BOT_NAMES:
                    found.append(f"{filename}:{node.lineno} {ast.unparse(one)} =")
    return found


def test_the_scan_sees_each_way_of_writing_a_bot_state():
    planted = (
        "bot.status = 'done'\n"
        "Bot.objects.filter(pk=1).update(last_error='x')\n"
        "BotStatusChange.objects.create(bot=bot, code='x')\n"
        "bot.save(update_fields=['queued_payload'])\n"
        "bot.status, bot.wait_until = 'a', None\n"
        "Bot.objects.create(user=u, status='queued')\n"
    )
    assert {line.split()[0] for line in state_writes(planted, "x.py")} == {f"x.py:{n}" for n in range(1, 7)}
    assert not state_writes(
        "credential.status = 'ok'\nBot.objects.create(user=u)\nbot.save(update_fields=['x'])\n", "y.py"
    )


def test_only_the_bot_model_writes_a_bots_state():
    """The model is the recallbots.models package (Bot in bot.py, with its launch and history
    mixins beside it); every other module of the app is scanned."""
    root = Path(__file__).resolve().parents[2] / "recallbots"
    assert (root / "models" / "bot.py").is_file()
    writes = [
        found
        for path in sorted(root.rglob("*.py"))
        if "migrations" not in path.parts and path.relative_to(root).parts[0] != "models"
        for found in state_writes(path.read_text(), str(path.relative_to(root.parent)))
    ]
    assert not writes, "\n".join(writes)
