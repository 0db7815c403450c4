"""The layers a reader sees in the tree, checked: every import (module level or inside a function) points down
or sideways within its own package, never up, and the runtime has no import cycle.

contracts → shared (runtime) → policies → services/<stage> → cli (operator and staff application) → devtools.
A stage never imports another stage: they talk only through Kafka topics.

The staff console (``services/console``) is deployed as a sixth process but is no stage: it is the staff
application on the web, standing where ``cli`` stands (it reads the staff views and publishes the same staff
events), so it ranks with ``cli`` and no stage may import it.
"""

import ast
from pathlib import Path

from shared.settings import REPO_ROOT

RANK = {"contracts": 0, "shared": 1, "policies": 2, "services": 3, "cli": 4, "devtools": 5}


STAFF_APPS = ("services.console",)


def _package(module: str) -> str:
    """The top-level package (layer) of a dotted module name; the console counts as ``cli``."""
    if any(module == app or module.startswith(app + ".") for app in STAFF_APPS):
        return "cli"
    return module.split(".", maxsplit=1)[0]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 and _package(module) == "services" else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if _package(name) in RANK]


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in RANK:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).with_suffix("")
            out[".".join(rel.parts)] = path
    return out


def test_no_import_runs_upward_and_no_stage_imports_another() -> None:
    problems = []
    for module, path in _modules().items():
        own = _package(module)
        for line, name in _imports(path):
            if RANK[_package(name)] > RANK[own]:
                problems.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {name} (upward)")
            stage, other = _stage(module), _stage(name)
            if stage and other and stage != other:
                problems.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {name} (another stage)")
    assert not problems, "\n".join(problems)


def test_the_runtime_has_no_import_cycle() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        if _package(module) != "shared":
            continue
        targets = set()
        for _, imported in _imports(path):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and _package(target) == "shared" and target != module:
                targets.add(target)
        graph[module] = targets

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, {m}))
    assert not cycles, f"modules on an import cycle: {cycles}"
