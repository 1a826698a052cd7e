"""The image holds only what production runs: `.dockerignore` leaves out every top-level entry of
the checkout that is not an app, the project package, templates/, manage.py, requirements/ or
docker/ (the fake Zoom and Recall in fakes/ included: the broker never loads them)."""

import ast
import fnmatch
import subprocess
from pathlib import Path

import pytest

from tests.test_architecture import PACKAGES

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {*PACKAGES, "templates", "manage.py", "requirements", "docker"}


def top_level_entries() -> set[str]:
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return {path.split("/", 1)[0] for path in listed.stdout.splitlines()}


def ignored_by_docker(name: str) -> bool:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    return any(fnmatch.fnmatch(name, p) for p in patterns if p and not p.startswith(("#", "!")))


def test_the_image_context_leaves_out_all_but_what_production_runs():
    assert "fakes" in top_level_entries()
    carried = {name for name in top_level_entries() if not ignored_by_docker(name)}
    assert carried == PRODUCTION


def test_no_app_imports_the_fakes_or_the_tests():
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
                found += [(str(path.relative_to(ROOT)), n) for n in names if n.split(".")[0] in ("fakes", "tests")]
    assert found == []
