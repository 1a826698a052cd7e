"""The apps depend one way: webhooks and recallbots may use zoomauth, never the reverse, and the
project package uses no app. Read from the source with ast: imports (inside functions included)
and the dependencies that hide in strings: `apps.get_model("app.Model")`, lazy model references
in relations and signal senders, task names given to enqueue_safely or send_task."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("brokerproject", "accounts", "zoomauth", "recallbots", "webhooks")
# Who may import whom (beside itself). Everything else is a wrong-way arrow.
ALLOWED = {
    "brokerproject": set(),
    "zoomauth": {"brokerproject"},
    "accounts": {"brokerproject"},
    "webhooks": {"brokerproject", "zoomauth"},
    "recallbots": {"brokerproject", "accounts", "zoomauth", "webhooks"},
}
# "app.Model" (a lazy model reference: get_model, relations, signal senders) or "app.tasks.name"
# (a task enqueued by name) anywhere in the code: a dependency as real as an import.
DOTTED = re.compile(rf"^({'|'.join(PACKAGES)})\.(?:[A-Z]\w*|tasks\.\w+)$")


def dependencies_in(source: str, filename: str = "<source>", *, strings: bool = True) -> list[tuple[str, int]]:
    """(package, line) of every import and (with `strings`) every app reference written as a string."""
    tree = ast.parse(source, filename=filename)
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module.split(".")[0], node.lineno)]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if DOTTED.match(node.value):
                found.append((node.value.split(".")[0], node.lineno))
    return [(package, line) for package, line in found if package in PACKAGES]


# The composition root names the apps (INSTALLED_APPS, AUTH_USER_MODEL, task routes, the beat
# schedule): that is its job. Its imports are held to the rule all the same.
COMPOSITION_ROOT = "brokerproject/settings.py"


def imports_of(package: str) -> dict[str, set[tuple[str, int]]]:
    found: dict[str, set[tuple[str, int]]] = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        where = str(path.relative_to(ROOT))
        for target, line in dependencies_in(path.read_text(), str(path), strings=where != COMPOSITION_ROOT):
            if target != package:
                found.setdefault(target, set()).add((where, line))
    return found


def test_a_dependency_hidden_in_a_string_is_seen():
    planted = 'from django.apps import apps\n\nBot = apps.get_model("recallbots.Bot")\n'
    assert ("recallbots", 3) in dependencies_in(planted)
    assert "recallbots" not in ALLOWED["webhooks"]  # so planted in webhooks it fails the test below
    lazy = 'post_save.connect(clear, sender="recallbots.RecallOAuthApp")\nenqueue_safely("zoomauth.tasks.x", 1)\n'
    assert {package for package, _ in dependencies_in(lazy)} == {"recallbots", "zoomauth"}


def test_every_arrow_points_the_allowed_way():
    wrong = [
        f"{where}:{line} imports {target}"
        for package in PACKAGES
        for target, places in imports_of(package).items()
        if target not in ALLOWED[package]
        for where, line in sorted(places)
    ]
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_cycle_between_packages():
    graph = {package: set(imports_of(package)) for package in PACKAGES}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in graph[path[-1]]:
            if nxt == start:
                return [*path, start]
            if nxt not in path and (found := cycle_from(start, [*path, nxt])):
                return found
        return None

    cycles = [" → ".join(c) for p in PACKAGES if (c := cycle_from(p, [p]))]
    assert not cycles, cycles


def test_every_task_enqueued_by_name_exists():
    from brokerproject.celery import app

    app.loader.import_default_modules()  # autodiscovery: every app's tasks.py
    named = {
        node.value
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.match(r"^\w+\.tasks\.\w+$", node.value)
    }
    assert named, "no task names found: the scan is broken"
    assert not sorted(named - set(app.tasks)), "enqueued by a name no task has"
