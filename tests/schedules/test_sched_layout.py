"""shared/schedules/ depends on the job store, never on the job service (except runs.py, the glue), and its
imports are at the top of its modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from shared.schedules import operations

PACKAGE = Path(operations.__file__).resolve().parent
ROOT = PACKAGE.parents[1]
GLUE = {"runs.py"}  # starts runs as jobs: the one module that may use shared.service


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_module_but_the_glue_imports_the_job_service(path):
    if path.name in GLUE:
        pytest.skip("the glue")
    assert "shared.service" not in imported(ast.parse(path.read_text()))


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_imports_are_at_the_top(path):
    tree = ast.parse(path.read_text())
    nested = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in tree.body
    ]
    assert nested == []


def test_the_schedule_operations_load_without_the_job_service():
    code = (
        "import sys; import shared.schedules.operations, shared.schedules.history, shared.schedules.tick; "
        "print('shared.service' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stopping_runs_needs_the_stop_function():
    with pytest.raises(TypeError):
        operations.unregister("any", stop_running=True)
