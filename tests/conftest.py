"""Shared pytest configuration."""
from __future__ import annotations

import pytest

CONFORMANCE_TEST = "test_conformance.py::test_conformance_case["
_SELECTED_KEY = pytest.StashKey[int]()


def pytest_collection_finish(session):
    """Count the conformance cases that will run (after -k / --deselect)."""
    session.config.stash[_SELECTED_KEY] = sum(CONFORMANCE_TEST in item.nodeid
                                              for item in session.items)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print 'N passed of M selected' for the ONNX conformance cases."""
    selected = config.stash.get(_SELECTED_KEY, 0)
    if not selected:
        return
    passed = sum(CONFORMANCE_TEST in report.nodeid and report.when == "call"
                 for report in terminalreporter.stats.get("passed", []))
    terminalreporter.write_line(f"ONNX conformance: {passed} passed of {selected} selected")
