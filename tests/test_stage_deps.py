"""Every DVC stage lists, in its deps, the source code its command runs.

DVC re-runs a stage only when a dep changed. A module that a stage's command
imports (directly, or lazily inside a function) but that is missing from its
deps would let `dvc repro` reuse a stale cache after that module changed. This
test follows the imports of each stage's command handler through the package
(statically, with the ast module, so imports inside functions count too) and
checks that every file reached lies under one of the stage's deps.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# Modules whose changes cannot change what a stage writes, so no stage lists them:
# argument dispatch and shared options, the MLflow client wrapper (run bookkeeping only), atomic file
# writing, the package's version string, and the error classes (a message's wording
# is not an output).
NOT_DEPS = {
    "melodance/__init__.py",
    "melodance/cli.py",
    "melodance/options.py",
    "melodance/tracking.py",
    "melodance/io.py",
    "melodance/errors.py",
}


def module_file(name: str) -> Path | None:
    """The source file of a ``melodance...`` module (package -> its __init__.py)."""
    base = SRC / Path(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_modules(path: Path) -> set[str]:
    """melodance modules a source file imports anywhere in its body (absolute imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("melodance")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("melodance"):
            found.add(node.module)
            # `from melodance.x import y` may name a submodule y
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if module_file(f"{node.module}.{a.name}")}
    return found


def import_closure(module: str) -> set[Path]:
    """Files of every melodance module reachable from ``module``, parents' __init__ included."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # package __init__ runs too
        f = module_file(name)
        # What the exempt modules import is theirs (MLflow logging), not the stage's.
        if f is not None and f.relative_to(SRC).as_posix() not in NOT_DEPS:
            todo += sorted(imported_modules(f) - seen)
    return {f for n in seen if (f := module_file(n)) is not None}


def handler_module(cmd: str) -> str:
    """The module that defines the function a `melodance ...` command line dispatches to."""
    from melodance.cli import build_parser

    argv = shlex.split(cmd)
    assert argv[0] == "melodance", f"stage command does not start with melodance: {cmd}"
    args = build_parser().parse_args(argv[1:])
    return args.func.__module__


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def uncovered(stage: dict) -> list[str]:
    deps = [REPO / d for d in stage.get("deps", [])]
    missing = []
    for f in sorted(import_closure(handler_module(stage["cmd"]))):
        rel = f.relative_to(SRC).as_posix()
        if rel in NOT_DEPS:
            continue
        if not any(f == d or d in f.parents for d in deps):
            missing.append(f"src/{rel}")
    return missing


@pytest.mark.parametrize("name", list(stages()))
def test_stage_deps_cover_the_code_it_runs(name):
    missing = uncovered(stages()[name])
    assert not missing, (f"dvc.yaml stage '{name}' runs code its deps do not list "
                         f"(add these or a folder above them): {missing}")


def test_a_removed_dep_is_caught():
    """The check itself: dropping the train stage's model code from its deps is reported."""
    stage = dict(stages()["train"])
    stage["deps"] = [d for d in stage["deps"] if d != "src/melodance/models"]
    assert any(m.startswith("src/melodance/models/") for m in uncovered(stage))
