"""Shared pytest configuration."""
from __future__ import annotations

import sys

import pytest

CONFORMANCE_TEST = "test_conformance.py::test_conformance_case["
C_CONFORMANCE_TEST = "test_conformance_c.py::test_conformance_c_case["


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print 'N passed of M selected' for the ONNX conformance cases.

    Counted from the test reports rather than at collection, because under
    pytest-xdist the controller never sees the collected items."""
    seen: set[str] = set()
    passed: set[str] = set()
    for outcome, reports in terminalreporter.stats.items():
        for report in reports:
            nodeid = getattr(report, "nodeid", "")
            if CONFORMANCE_TEST not in nodeid:
                continue
            seen.add(nodeid)
            if outcome == "passed" and report.when == "call":
                passed.add(nodeid)
    if seen:
        terminalreporter.write_line(f"ONNX conformance: {len(passed)} passed of {len(seen)} selected")
    _c_conformance_summary(terminalreporter)


def _c_conformance_summary(terminalreporter) -> None:
    """The same count for the cases run through generated C (tests/test_conformance_c.py)."""
    seen: set[str] = set()
    passed: set[str] = set()
    for outcome, reports in terminalreporter.stats.items():
        for report in reports:
            nodeid = getattr(report, "nodeid", "")
            if C_CONFORMANCE_TEST in nodeid:
                seen.add(nodeid)
                if outcome == "passed" and report.when == "call":
                    passed.add(nodeid)
    if seen:
        module = sys.modules.get("test_conformance_c")  # absent on an xdist controller
        skipped = getattr(module, "NOT_SELECTED_COUNT", None)
        note = f" ({skipped} more need ops without C kernels)" if skipped else ""
        terminalreporter.write_line(
            f"C conformance: {len(passed)} passed of {len(seen)} selected{note}")
