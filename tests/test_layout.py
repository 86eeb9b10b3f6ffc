"""The package layout of README.md's "Layout" section, read from the import graph of edge/ (every import, lazy
ones inside functions included), so that the walls between packages cannot quietly knot again."""

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

EDGE = Path(__file__).resolve().parents[1] / "edge"
MAX_LINES = 400

# Lowest first: a package imports only packages of a lower tier, or of its own tier where that tier allows it.
TIERS: list[tuple[str, ...]] = [
    ("errors",), ("hardening",), ("fsio",), ("config",), ("keys",), ("models",), ("localdb",),
    ("protocol",),
    ("capture",), ("runtime",), ("vision",), ("track",), ("watchlist",), ("pipeline",), ("link",), ("audit",),
    ("cliargs",),
    ("daemon", "hq", "handheld"),  # the three sides: they meet only in protocol and link
    ("cli",),  # assembles the commands by name (importlib), so the trial fleet can run the real `edge` in-process
    ("demo", "replay", "evaluation", "engines", "bench"),  # commands: may use one another, without cycles
    ("__main__", "__init__"),
]
SIDES = {"daemon", "hq", "handheld"}
RANK = {name: rank for rank, tier in enumerate(TIERS) for name in tier}


def _imports() -> dict[tuple[str, str], set[str]]:
    """(importer, imported) package pairs -> the files where they occur."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in EDGE.rglob("*.py"):
        me = path.relative_to(EDGE).with_suffix("").parts[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "edge" and len(parts) > 1 and parts[1] != me:
                    edges[(me, parts[1])].add(str(path.relative_to(EDGE.parent)))
    return edges


IMPORTS = _imports()


def test_every_package_has_a_tier() -> None:
    found = {p.with_suffix("").name for p in EDGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert found - set(RANK) == set(), "a new package: give it its place in TIERS and in README.md's layout"


def test_imports_point_down_the_data_flow() -> None:
    upward = {f"{a} imports {b}: {sorted(where)}" for (a, b), where in IMPORTS.items()
              if RANK[b] > RANK[a] or (RANK[a] == RANK[b] and (a in SIDES or len(TIERS[RANK[a]]) == 1))}
    assert upward == set()


def test_no_cycles_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in IMPORTS:
        graph[a].add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert sorted(f"{a} <-> {b}" for a, b in IMPORTS if reaches(b, a, {b})) == []


def test_config_and_link_stand_alone() -> None:
    """config imports nothing but errors; link speaks protocol and knows no HQ or handheld code."""
    assert {b for a, b in IMPORTS if a == "config"} <= {"errors"}
    assert {b for a, b in IMPORTS if a == "link"} & {"hq", "handheld", "daemon"} == set()


@pytest.mark.parametrize("pattern, home", [(r"os\.replace\(", "fsio.py"),
                                           (r"^\s*(from|import) paho\b", "link/mqtt.py")])
def test_one_module_per_mechanism(pattern: str, home: str) -> None:
    """Durable file replacement in one place (edge.fsio.write_atomic); MQTT in one place (the link's client)."""
    where = {str(p.relative_to(EDGE)) for p in EDGE.rglob("*.py") if re.search(pattern, p.read_text(), re.M)}
    assert where == {home}


def test_modules_stay_small() -> None:
    big = {str(p.relative_to(EDGE)): n for p in EDGE.rglob("*.py") if (n := p.read_text().count("\n")) > MAX_LINES}
    assert big == {}
