"""The layout's rules (../shared/DESIGN.md), checked on the source: who may import what.

Every check reads the modules' own ``import`` statements with ``ast`` (nothing is
imported or executed), follows imports within ``reconciler`` transitively, and names
the chain that breaks a rule.  ``PURE_MODULES`` is the one list of pure decision
modules: this file checks them and ``bench/mutation.py`` mutates them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reconciler"

# The pure decision modules: no I/O, time passed in. A new pure module is added here, once.
PURE_MODULES: tuple[str, ...] = (
    "reconciler.errors",
    "reconciler.clock",
    "reconciler.backoff",
    "reconciler.redact",
    "reconciler.jobs.states",
    "reconciler.jobs.validation",
    "reconciler.jobs.records",
    "reconciler.jobs.jobfile",
    "reconciler.provider.codes",
    "reconciler.provider.outcomes",
    "reconciler.provider.acuse",
    "reconciler.provider.breaker",
    "reconciler.mailbox.notification",
    "reconciler.mailbox.trust",
    "reconciler.mailbox.reconcile",
    "reconciler.mailbox.judge",
    "reconciler.mailbox.passes",
    "reconciler.jobs.notices",
    "reconciler.sat.expression",
    "reconciler.sat.answer",
    "reconciler.sat.schedule",
    "reconciler.sat.verdict",
    "reconciler.sat.decide",
    "reconciler.events.outbox",
    "reconciler.events.signature",
    "reconciler.events.urls",
    "reconciler.daemon.health",
    "reconciler.daemon.totals",
)
# The outside libraries that only a seam may import (and sqlite3, which only the ledger may).
SEAM_LIBRARIES = frozenset({"zeep", "imapclient", "aiosqlite", "httpx", "apscheduler", "sqlite3"})
# ``reconciler.ledger`` writes what it is told: the decision is made above it.
ABOVE_THE_LEDGER = ("reconciler.mailbox", "reconciler.provider", "reconciler.sat", "reconciler.events")
# Known breaks of the ledger rule, each with the issue item that removes it. The xfail is strict: the
# test turns red the moment the import is gone, so the entry must then be deleted here.
LEDGER_KNOWN: dict[str, str] = {}


def path_of(module: str) -> Path | None:
    """The file of ``module`` inside this repository, or None when it is not one of ours."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


@cache
def imports_of(module: str) -> frozenset[str]:
    """The absolute names ``module`` imports at run time (lazy imports in functions included)."""
    path = path_of(module)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names.add(source)
            # ``from pkg import mod`` imports the module pkg.mod when there is one.
            names.update(f"{source}.{alias.name}" for alias in node.names if path_of(f"{source}.{alias.name}"))
    return frozenset(names)


def _with_parents(module: str) -> Iterator[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ too."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def chains(module: str) -> dict[str, tuple[str, ...]]:
    """Every name imported when ``module`` is, with the shortest chain of imports that brings it in."""
    seen: dict[str, tuple[str, ...]] = {module: (module,)}
    queue = [module]
    while queue:
        current = queue.pop(0)
        for name in sorted(imports_of(current)):
            for step in _with_parents(name):
                if step not in seen:
                    seen[step] = (*seen[current], step)
                    if step.split(".")[0] == "reconciler":
                        queue.append(step)
    return seen


def all_modules(under: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(under.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_the_pure_list_names_modules_that_exist() -> None:
    assert [m for m in PURE_MODULES if path_of(m) is None] == []
    assert len(set(PURE_MODULES)) == len(PURE_MODULES)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_seam_library(module: str) -> None:
    found = {name: chain for name, chain in chains(module).items() if name.split(".")[0] in SEAM_LIBRARIES}
    assert not found, f"{module} is listed as pure but imports " + "; ".join(
        " -> ".join(chain) for chain in found.values()
    )


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_loads_no_seam_library_when_imported(module: str) -> None:
    """The same rule at run time: what importing the module really loads, in a fresh interpreter."""
    show = f"import sys, {module}; print(*sorted({{name.split('.')[0] for name in sys.modules}}))"
    loaded = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, check=True).stdout.split()
    assert not SEAM_LIBRARIES & set(loaded), f"{module} loads {sorted(SEAM_LIBRARIES & set(loaded))}"


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=LEDGER_KNOWN[m])) if m in LEDGER_KNOWN else m
        for m in all_modules(PACKAGE / "ledger")
    ],
)
def test_ledger_imports_nothing_from_above_it(module: str) -> None:
    own = sorted(n for n in imports_of(module) if n.startswith(ABOVE_THE_LEDGER))
    assert own == [], f"{module} imports {', '.join(own)}: the ledger is handed decisions as data"


def test_only_the_cli_imports_the_sandbox() -> None:
    allowed = ("reconciler.sandbox", "reconciler.cli")
    bad = [
        f"{m} imports {n}"
        for m in all_modules()
        if not m.startswith(allowed)
        for n in sorted(imports_of(m))
        if n.startswith("reconciler.sandbox")
    ]
    assert bad == []


def test_the_sandbox_does_not_import_the_product() -> None:
    """The simulator has its own rules: a bug in the product's validators must not be accepted by both sides."""
    bad = [
        f"{m} imports {n}"
        for m in all_modules(PACKAGE / "sandbox")
        for n in sorted(imports_of(m))
        if n.split(".")[0] == "reconciler" and not n.startswith("reconciler.sandbox") and n != "reconciler"
    ]
    assert bad == []


def test_the_rules_see_what_they_claim_to() -> None:
    """The checks above are only as good as the import reader: prove it on known facts of this code base."""
    assert "zeep" in {n.split(".")[0] for n in chains("reconciler.provider.soap")}
    assert "reconciler.jobs.validation" in imports_of("reconciler.jobs.jobfile")
    assert chains("reconciler.jobs.jobfile")["reconciler.errors"][-1] == "reconciler.errors"
    assert "reconciler.sandbox" in {n for m in all_modules(PACKAGE / "cli") for n in imports_of(m)}
