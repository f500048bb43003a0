"""Dependencies point one way: core <- accounts <- quotas, memory <- agents <- workflows <- monitoring; tasks is
used by all and uses only accounts and core; platform_site wires everything and nothing imports it."""

import ast
from pathlib import Path

from django.conf import settings

ALLOWED = {
    "core": set(),
    "accounts": {"core"},
    "tasks": {"core", "accounts"},
    "quotas": {"core", "accounts", "tasks"},
    "memory": {"core", "accounts", "tasks"},
    "agents": {"core", "accounts", "tasks", "quotas", "memory"},
    "workflows": {"core", "accounts", "tasks", "quotas", "memory", "agents"},
    "monitoring": {"core", "accounts", "tasks", "quotas", "memory", "agents", "workflows"},
}
PACKAGES = {*ALLOWED, "platform_site"}


def imported_packages(app: str) -> dict[str, set[str]]:
    """Our packages each module of `app` imports (migrations aside), by module path."""
    found = {}
    for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(settings.BASE_DIR))] = {name.split(".")[0] for name in names} & PACKAGES - {app}
    return found


def test_every_app_imports_only_what_lies_below_it():
    wrong = [
        f"{module} imports {', '.join(sorted(packages - ALLOWED[app]))}"
        for app in ALLOWED
        for module, packages in imported_packages(app).items()
        if packages - ALLOWED[app]
    ]

    assert not wrong, wrong


def test_the_walk_reads_the_apps_imports():
    assert "core" in imported_packages("agents")["agents/api.py"]
