"""Staff accounts with exactly the named permissions, and the admin requests they make."""

import re

from django.contrib.auth.models import Permission

from accounts.models import User


def staff_with(*perms: str, username: str = "") -> User:
    """A staff account (not a superuser) holding only `perms`, each "app_label.codename"."""
    person = User.objects.create_user(
        username=username or "staff-" + "-".join(p.split(".")[1] for p in perms)[:120] or "staff-nothing",
        password="correct horse battery",
        is_staff=True,
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=person.pk)  # a fresh instance: no cached permissions


def offered_actions(client, changelist: str) -> set[str]:
    """The actions the changelist offers this person (none: no action form at all)."""
    page = client.get(changelist)
    assert page.status_code == 200, page.status_code
    select = re.search(r'<select name="action".*?</select>', page.content.decode(), re.S)
    return set(re.findall(r'<option value="(\w+)"', select.group(0))) if select else set()


def post_action(client, changelist: str, action: str, *pks):
    """What the changelist's action form sends (forged or not)."""
    return client.post(changelist, {"action": action, "_selected_action": [str(pk) for pk in pks]})
