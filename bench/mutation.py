"""Mutation testing of the pure decision modules with mutmut: prints the kill ratio and every survivor.

The modules come from one place, ``PURE_MODULES`` in tests/test_layout.py (the list the layout test
checks for purity). Each module is mutated against its mirror test file (tests/<folder>/test_<name>.py,
or tests/test_<name>.py for the basics) and the tests of the other pure modules, never the
integration suites (they start servers and take minutes per mutant).

mutmut works in a copy: the script copies reconciler/, tests/ and pyproject.toml into a work
directory, writes the ``[tool.mutmut]`` table there, and runs ``mutmut run`` in it, so the working
tree is never touched. Slow (minutes to an hour on two cores): not part of CI.

Run: .venv/bin/pip install -e '.[test,mutation]'
     .venv/bin/python bench/mutation.py [--modules reconciler.jobs.states ...] [--max-children 2]
         [--dir /tmp/mutation] [--json out.json] [--no-diffs]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_layout import PURE_MODULES, path_of  # noqa: E402

# Counted as killed: a test failed, or the mutant could not even be imported or hung.
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def source_file(module: str) -> str:
    path = path_of(module)
    if path is None:
        raise SystemExit(f"{module} (from PURE_MODULES) has no file")
    return str(path.relative_to(ROOT))


def mirror_tests(module: str) -> list[str]:
    """The test file that mirrors ``module`` (tests/ mirrors reconciler/), when there is one."""
    parts = module.split(".")[1:]
    candidate = Path("tests", *parts[:-1], f"test_{parts[-1]}.py")
    return [str(candidate)] if (ROOT / candidate).is_file() else []


def mutmut_table(modules: list[str], tests: list[str]) -> str:
    """The [tool.mutmut] table; tests that read a module's source (its imports) are left out: mutmut rewrites it."""

    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return f"""
[tool.mutmut]
source_paths = ["reconciler"]
only_mutate = {toml_list([source_file(m) for m in modules])}
pytest_add_cli_args_test_selection = {toml_list(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "tests._mutation_plugin", "-q", "--timeout", "120",
    "-k", "not module_is_pure"]
use_git_change_detection = false
"""


# mutmut forks every mutant's run from a process that has already run the tests: a functools cache
# filled there (states.step, notification._addresses) would answer for the mutant without running it,
# and the mutant would "survive". Every test starts with empty caches.
PLUGIN = '''"""Written by bench/mutation.py: every test starts with empty functools caches."""
import functools
import gc

import pytest


@pytest.fixture(autouse=True)
def _empty_caches():
    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper):
            obj.cache_clear()
    yield
'''


def prepare(work: Path, modules: list[str], tests: list[str]) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for name in ("reconciler", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore, dirs_exist_ok=True)
    (work / "tests" / "_mutation_plugin.py").write_text(PLUGIN)
    pyproject = (ROOT / "pyproject.toml").read_text()
    if "[tool.mutmut]" in pyproject:
        raise SystemExit("pyproject.toml has its own [tool.mutmut]: this script writes that table itself")
    (work / "pyproject.toml").write_text(pyproject + mutmut_table(modules, tests))
    shutil.copy(ROOT / "README.md", work / "README.md")


def results(work: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    out = {}
    for line in done.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            out[name] = status
    return out


def diff(work: Path, mutant: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", mutant], cwd=work, capture_output=True, text=True, check=False
    )
    return "\n".join(
        line for line in done.stdout.splitlines()[1:] if line.startswith(("+", "-")) and line[:3] not in ("+++", "---")
    )


def run_mutmut(work: Path, modules: list[str], tests: list[str], untested: list[str], children: int) -> None:
    prepare(work, modules, tests)
    print(f"mutating {len(modules)} modules against {len(tests)} test files in {work}", flush=True)
    if untested:
        print(f"no mirror test file for: {', '.join(untested)}", flush=True)
    with (work / "mutmut.log").open("w") as log:
        run = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if run.returncode != 0:
        tail = (work / "mutmut.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutmut run exited with {run.returncode}:\n{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=list(PURE_MODULES), help="A subset of PURE_MODULES.")
    parser.add_argument("--max-children", type=int, default=2, help="Mutants tested in parallel.")
    parser.add_argument("--dir", type=Path, help="Work here (kept; a second run reuses mutmut's cache).")
    parser.add_argument("--json", type=Path, help="Also write the figures and survivors here.")
    parser.add_argument("--no-diffs", action="store_true", help="List the survivors without their diffs.")
    parser.add_argument(
        "--report", action="store_true", help="Only report what --dir holds (a finished or interrupted run)."
    )
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(PURE_MODULES))
    if unknown:
        raise SystemExit(f"not in PURE_MODULES (tests/test_layout.py): {', '.join(unknown)}")

    tests = sorted({t for m in PURE_MODULES for t in mirror_tests(m)})
    untested = [m for m in args.modules if not mirror_tests(m)]
    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="reconciler-mutation-")
    work = args.dir or Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    if args.report and not (work / "mutants").is_dir():
        raise SystemExit(f"--report: no mutmut run in {work}")
    try:
        started = time.perf_counter()
        if not args.report:
            run_mutmut(work, args.modules, tests, untested, args.max_children)
        took = time.perf_counter() - started
        status = results(work)
        counts = Counter(status.values())
        killed = sum(counts[s] for s in KILLED)
        total = len(status)
        checked = total - counts["not checked"]  # an interrupted run (--report) has some
        survivors = sorted(name for name, s in status.items() if s not in KILLED and s != "not checked")
        ratio = killed / checked if checked else 0.0
        print(f"\n{total} mutants ({took / 60:.1f} min): " + ", ".join(f"{n} {s}" for s, n in counts.most_common()))
        print(
            f"kill ratio: {killed}/{checked} = {ratio:.1%}"
            + (f" ({total - checked} not checked)" if checked < total else "")
        )
        by_module = Counter(re.split(r"\.x_|\.xǁ", name)[0] for name in survivors)
        print("survivors by module: " + (", ".join(f"{m} {n}" for m, n in by_module.most_common()) or "none"))
        for name in survivors:
            print(f"\n{status[name]}: {name}")
            if not args.no_diffs:
                print(diff(work, name))
        if args.json:
            figures = {"total": total, "checked": checked, "killed": killed, "ratio": ratio, "counts": dict(counts)}
            args.json.write_text(json.dumps({**figures, "survivors": {n: status[n] for n in survivors}}, indent=2))
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
