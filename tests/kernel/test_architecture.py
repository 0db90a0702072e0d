"""The shape of the code, checked so that it stays: module and function sizes, and the import
rules of pyproject.toml's [tool.importlinter] (which `make test` runs as `lint-imports`)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _sources() -> list[Path]:
    return sorted(
        p for top in ("shared", "services") for p in (ROOT / top).rglob("*.py") if "migrations" not in p.parts
    )


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_60_lines() -> None:
    long: dict[str, int] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - start + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_size_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"def f() -> None:\n{body}\n")
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    assert (node.end_lineno or 0) - node.lineno + 1 > MAX_FUNCTION_LINES


def test_contracts_import_only_pydantic_the_standard_library_and_each_other() -> None:
    allowed_third_party = {"pydantic"}
    for path in sorted((ROOT / "shared" / "contracts").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or top in allowed_third_party or name.startswith("shared.contracts")
                assert ok, f"{path.relative_to(ROOT)} imports {name}"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    for top in ("shared", "services"):
        shutil.copytree(ROOT / top, copy / top, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_import_rules_hold_and_fail_when_a_service_imports_another(tree_copy: Path) -> None:
    kept = _lint_imports(tree_copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    # The copy is what lint-imports reads (not the installed tree): a crossing there must break it.
    (tree_copy / "services" / "school" / "crossing.py").write_text("from services.placement import models\n")
    broken = _lint_imports(tree_copy)
    assert broken.returncode != 0
    assert "Services meet on the bus or over HTTP, never in code BROKEN" in broken.stdout


def test_import_rules_fail_when_the_kernel_imports_a_service(tree_copy: Path) -> None:
    (tree_copy / "shared" / "kernel" / "crossing.py").write_text("import services.notify.models\n")
    broken = _lint_imports(tree_copy)
    assert broken.returncode != 0
    assert "The kernel imports no service BROKEN" in broken.stdout


def test_import_rules_fail_when_a_contract_imports_the_database_layer(tree_copy: Path) -> None:
    (tree_copy / "shared" / "contracts" / "crossing.py").write_text("import sqlalchemy\n")
    broken = _lint_imports(tree_copy)
    assert broken.returncode != 0
    assert "Contracts are the published language" in broken.stdout
