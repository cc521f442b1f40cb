"""The house rules of docs/architecture.md, checked rather than promised."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# "About 300 lines" for a class and "about 600" for a module, outside the sandbox.
CLASS_LINES = 330
MODULE_LINES = 650


def test_imports_keep_the_layers_the_pure_core_and_the_sandbox_apart() -> None:
    # import-linter's contracts live in pyproject.toml ([tool.importlinter]).
    checked = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


def test_no_class_or_module_outgrows_a_reader() -> None:
    oversized: list[str] = []
    for package in ("connector", "webhooks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            where = path.relative_to(ROOT)
            if text.count("\n") > MODULE_LINES:
                oversized.append(f"{where}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                    size = node.end_lineno - node.lineno + 1
                    if size > CLASS_LINES:
                        oversized.append(f"{where}: class {node.name} has {size} lines")
    assert oversized == []
