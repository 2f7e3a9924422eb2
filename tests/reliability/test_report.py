"""docs/reliability.md lists every fault test of this directory (the suite keeps it current)."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent
REPORT = HERE.parents[1] / "docs" / "reliability.md"


def test_the_report_lists_every_fault_test() -> None:
    report = REPORT.read_text()
    tests = [
        node.name
        for path in sorted(HERE.glob("test_*.py"))
        if path.name != Path(__file__).name
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]
    assert tests
    missing = [name for name in tests if f"`{name}`" not in report]
    assert not missing, f"docs/reliability.md does not describe {missing}"
