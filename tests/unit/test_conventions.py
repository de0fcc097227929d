"""Conventions the test suite keeps, checked so that they stay kept."""

import ast

from tests.unit.paths import ROOT


def collected_tests(path):
    """The test functions pytest collects from ``path``: those named test_*."""
    tree = ast.parse(path.read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    ]


class TestConventions:
    def test_every_test_states_its_rule_in_a_docstring(self):
        """A test's name says what it checks; its docstring says the rule, for the reader of a failure."""
        files = sorted((ROOT / "tests").rglob("test_*.py"))
        assert files
        missing = [
            f"{path.relative_to(ROOT)}::{node.name}"
            for path in files
            for node in collected_tests(path)
            if ast.get_docstring(node) is None
        ]
        assert missing == []
