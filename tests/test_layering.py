"""The import contract: the floors of docs/ARCHITECTURE.md ("Rules"), checked on the source.

Every module under src/muses is parsed (nothing is imported, so the check costs no torch) and
every ``import muses...`` / ``from muses... import`` is collected, those inside functions
included: a deferred import still makes the lower floor depend on the higher one, it only
hides it. An arrow may run sideways or down, never up; no two packages (and no two modules)
may import each other, even through others.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The floors, ground first (docs/ARCHITECTURE.md, /work/shared/DESIGN.md). A layer is a
# top-level module or package of muses; a new one must be placed here before it can be imported.
FLOORS: dict[str, int] = {
    # 1: the ground, no muses logic above errors and typed settings
    "errors": 1, "settings": 1, "progress": 1, "imaging": 1, "csvfile": 1,
    "compute": 1,  # generic local/Ray worker pools: whoever uses them brings the muses work
    "predictions": 1,  # ranking probabilities and the stored classification: numpy only
    # 2: the catalog
    "collection": 2, "labeling": 2,
    "embeddings": 2,  # photo vectors on disk, keyed by the store's images
    # 3
    "datasets": 3,
    # 4
    "model": 4,
    # 5: what runs a model over the collection, and reads its results
    "analysis": 5, "search": 5, "classify": 5, "classify_ray": 5, "collection_map": 5,
    # 6: the use-case layer; the package itself (muses/__init__.py) exports it
    "actions": 6, "": 6,
    # 7: the doors
    "cli": 7, "web": 7, "naive_classification": 7, "__main__": 7,
    "testing": 7,  # what tests and benchmarks share (a PostgreSQL cluster, a server, drawn datasets)
}
DOORS = 7  # the only floor that may look for a project on its own (find_project())
# Names every module may import from muses/__init__.py: it binds them before importing anything,
# and Python runs the package before any of its modules, so this arrow can never close a circle.
ROOT_NAMES = {"__version__"}
# Outer doors nothing in muses may use: the CLEO compatibility names, and test support.
NOBODY_IMPORTS = {"naive_classification": "the CLEO names are a door, not a library",
                  "testing": "test support is for tests and benchmarks"}

# Edges allowed against the floors while a change is in flight; empty on main.
PENDING: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Arrow:
    source: str  # importing module, "muses.model.files"
    target: str  # imported module (or "find_project" for a call of it)
    path: str  # "muses/model/files.py"
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def layer(module: str) -> str:
    """muses.model.files → "model"; muses → "" (the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def read_modules(src: Path) -> dict[str, tuple[str, str]]:
    """{module name: (path relative to src, source)} for every .py file of the muses package."""
    modules = {}
    for file in sorted((src / "muses").rglob("*.py")):
        rel = file.relative_to(src)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = (rel.as_posix(), file.read_text(encoding="utf-8"))
    return modules


def arrows(module: str, path: str, source: str, known: Iterable[str]) -> list[Arrow]:
    """Every muses import in a module, wherever it stands, and every call of find_project()."""
    known = set(known)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found: dict[tuple[str, int], Arrow] = {}  # one per target and line: `from a import b, c` is one arrow
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "muses":
                    found[alias.name, node.lineno] = Arrow(module, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "muses":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in known else base
                if not (target == "muses" and alias.name in ROOT_NAMES):
                    found[target, node.lineno] = Arrow(module, target, path, node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name == "find_project":
                found["find_project", node.lineno] = Arrow(module, "find_project", path, node.lineno)
    return sorted(found.values(), key=lambda a: (a.line, a.target))


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def violations(modules: Mapping[str, tuple[str, str]], pending: set[tuple[str, str]] = frozenset()) -> list[str]:
    """One line per broken rule, with file and line; empty when the contract holds."""
    found = []
    module_edges: dict[str, set[str]] = {}
    layer_edges: dict[str, set[str]] = {}
    example: dict[tuple[str, str], Arrow] = {}
    for module, (path, source) in sorted(modules.items()):
        if layer(module) not in FLOORS:
            found.append(f"{path}: {layer(module)!r} has no floor: place it in FLOORS (tests/test_layering.py) "
                         "and in docs/ARCHITECTURE.md")
            continue
        for arrow in arrows(module, path, source, modules):
            if (arrow.source, arrow.target) in pending:
                continue
            here = layer(module)
            if arrow.target == "find_project":
                if FLOORS[here] < DOORS:
                    found.append(f"{arrow.where()} calls find_project(): {here} (floor {FLOORS[here]}) must be "
                                 "handed its Project (or paths); only cli, web and naive_classification look for one")
                continue
            there = layer(arrow.target)
            if there in NOBODY_IMPORTS and here != there:
                found.append(f"{arrow.where()} imports {arrow.target}: nothing in muses imports "
                             f"{there} ({NOBODY_IMPORTS[there]})")
            elif there not in FLOORS:
                found.append(f"{arrow.where()} imports {arrow.target}: {there!r} has no floor")
            elif FLOORS[there] > FLOORS[here]:
                found.append(f"{arrow.where()} imports {arrow.target}: {here or 'muses'} (floor {FLOORS[here]}) "
                             f"may not import {there or 'muses'} (floor {FLOORS[there]})")
            if arrow.target in modules and arrow.target != module:
                module_edges.setdefault(module, set()).add(arrow.target)
            if there != here and there in FLOORS:
                layer_edges.setdefault(here, set()).add(there)
                example.setdefault((here, there), arrow)
    for circle in cycles(layer_edges):
        shown = [example[(a, b)] for a in circle for b in sorted(layer_edges.get(a, ())) if b in circle]
        found.append(f"packages import each other: {' ↔ '.join(circle)} ("
                     + "; ".join(f"{a.where()} imports {a.target}" for a in shown) + ")")
    for circle in cycles(module_edges):
        found.append(f"modules import each other: {' ↔ '.join(circle)}")
    return found


def test_the_floors_hold():
    problems = violations(read_modules(SRC), PENDING)
    assert not problems, "the import contract is broken:\n" + "\n".join(problems)


def test_pending_edges_still_exist():
    """An allow-list entry whose edge is gone must go too, or it would let the edge come back."""
    modules = read_modules(SRC)
    present = {(a.source, a.target) for m, (p, s) in modules.items() for a in arrows(m, p, s, modules)}
    assert not PENDING - present, f"remove from PENDING in tests/test_layering.py: {sorted(PENDING - present)}"


def test_every_named_layer_exists_or_is_announced():
    # The table may name layers still to come (actions, imaging, csvfile, the Ray variants), but a
    # layer that exists must be in it: test_the_floors_hold reports it with its path otherwise.
    layers = {layer(m) for m in read_modules(SRC)}
    assert layers <= set(FLOORS)


def fake(**files: str) -> dict[str, tuple[str, str]]:
    """A synthetic muses package: {"model.x": source} → modules as read_modules gives them."""
    modules = {}
    for name, source in files.items():
        dotted = "muses" if name == "__init__" else f"muses.{name}"
        is_package = name == "__init__" or name in {"model", "analysis", "collection"}
        path = dotted.replace(".", "/") + ("/__init__.py" if is_package else ".py")
        modules[dotted] = (path, source)
    return modules


@pytest.mark.parametrize("source, expected", [
    ("import muses.analysis.plots\n",
     "muses/model/x.py:1 imports muses.analysis.plots: model (floor 4) may not import analysis (floor 5)"),
    ("def f():\n    from muses.analysis import plots\n",
     "muses/model/x.py:2 imports muses.analysis.plots: model (floor 4) may not import analysis (floor 5)"),
    ("from ..analysis.plots import save\n",
     "muses/model/x.py:1 imports muses.analysis.plots: model (floor 4) may not import analysis (floor 5)"),
    ("from muses.naive_classification import helpers\n",
     "muses/model/x.py:1 imports muses.naive_classification: nothing in muses imports naive_classification"),
    ("from muses.settings import find_project\ndef f():\n    return find_project()\n",
     "muses/model/x.py:3 calls find_project(): model (floor 4) must be handed its Project"),
    ("from muses import shiny\n", "muses/model/x.py:1 imports muses: model (floor 4) may not import muses (floor 6)"),
])
def test_the_checker_fails_on_an_upward_arrow(source, expected):
    problems = violations(fake(**{"model.x": source, "analysis.plots": "", "__init__": ""}))
    assert any(p.startswith(expected) for p in problems), problems


def test_the_checker_fails_on_a_circle_between_packages_of_one_floor():
    problems = violations(fake(**{"analysis": "", "search": "", "analysis.a": "import muses.search.b\n",
                                  "search.b": "def f():\n    from muses.analysis import a\n"}))
    assert problems == ["packages import each other: analysis ↔ search (muses/analysis/a.py:1 imports "
                        "muses.search.b; muses/search/b.py:2 imports muses.analysis.a)",
                        "modules import each other: muses.analysis.a ↔ muses.search.b"]


def test_the_checker_fails_on_a_circle_inside_a_package_and_on_an_unplaced_module():
    problems = violations(fake(**{"model.a": "from muses.model.b import X\n", "model.b": "import muses.model.a\n",
                                  "gadgets": ""}))
    assert problems == ["muses/gadgets.py: 'gadgets' has no floor: place it in FLOORS (tests/test_layering.py) "
                        "and in docs/ARCHITECTURE.md",
                        "modules import each other: muses.model.a ↔ muses.model.b"]


def test_the_checker_allows_downward_and_sideways_arrows_and_the_version():
    assert violations(fake(**{"model.x": "from muses import __version__\nimport muses.errors\n"
                                         "from muses.collection.store import Store\n",
                              "analysis.y": "from muses.search import z\nimport muses.model.x\n",
                              "search.z": "from muses.predictions import classification\n",
                              "errors": "", "predictions": "", "collection.store": ""})) == []
