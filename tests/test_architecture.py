"""The apps depend one way: webhooks and recallbots may use zoomauth, never the reverse, and the
project package uses no app. Read from the source with ast, imports inside functions included."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("brokerproject", "accounts", "zoomauth", "recallbots", "webhooks")
# Who may import whom (beside itself). Everything else is a wrong-way arrow.
ALLOWED = {
    "brokerproject": set(),
    "zoomauth": {"brokerproject"},
    "accounts": {"brokerproject", "zoomauth", "webhooks"},
    "recallbots": {"brokerproject", "accounts", "zoomauth", "webhooks"},
    "webhooks": {"brokerproject", "zoomauth"},
}


def imports_of(package: str) -> dict[str, set[tuple[str, int]]]:
    found: dict[str, set[tuple[str, int]]] = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add((str(path.relative_to(ROOT)), node.lineno))
    return found


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
