"""Shared pytest configuration: the conformance counts in the terminal summary."""
from __future__ import annotations

import sys

CONFORMANCE_TEST = "test_conformance.py::test_conformance_case["
C_CONFORMANCE_TEST = "test_conformance_c.py::test_conformance_c_case["


def _count(terminalreporter, marker: str) -> tuple[int, int]:
    """(passed, run) over the reports of one parametrized test.

    Counted from the reports rather than at collection, because under
    pytest-xdist the controller never sees the collected items; a skipped
    placeholder (the data folder is absent) is not a selected case."""
    run: set[str] = set()
    passed: set[str] = set()
    for outcome, reports in terminalreporter.stats.items():
        for report in reports:
            nodeid = getattr(report, "nodeid", "")
            if marker not in nodeid or outcome == "skipped":
                continue
            run.add(nodeid)
            if outcome == "passed" and report.when == "call":
                passed.add(nodeid)
    return len(passed), len(run)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print 'N passed of M selected' for the ONNX conformance cases, in numpy and in C."""
    passed, run = _count(terminalreporter, CONFORMANCE_TEST)
    if run:
        terminalreporter.write_line(f"ONNX conformance: {passed} passed of {run} selected")
    passed, run = _count(terminalreporter, C_CONFORMANCE_TEST)
    if run:
        module = sys.modules.get("test_conformance_c")  # absent on an xdist controller
        skipped = getattr(module, "NOT_SELECTED_COUNT", None)
        note = f" ({skipped} more need ops without C kernels)" if skipped else ""
        terminalreporter.write_line(f"C conformance: {passed} passed of {run} selected{note}")


# ----- markers (docs/ARCHITECTURE.md, "Tests") ------------------------------------
# What each test module needs; a module may also set `pytestmark` itself. A test
# with none of c / qemu / shared / slow is a unit test: `make test-fast` runs those.
MODULE_MARKERS = {
    "test_conformance": ("shared",),
    "test_conformance_c": ("shared", "c", "slow"),
    "test_models": ("shared",),
    "test_models_c": ("shared", "c", "qemu", "slow"),
    "test_golden_c": ("shared",),
    "test_kernels_c": ("c",),
    "test_mcubert_c": ("c", "qemu", "slow"),
    "test_binary_e2e": ("c",),
    "test_codegen": ("c",),
    "test_scheduler": ("slow",),
    "test_embedding": ("slow",),
    "test_tiling": ("slow",),
    "test_bert": ("slow",),
}
NEEDS = ("c", "qemu", "shared", "slow")


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        for name in MODULE_MARKERS.get(module, ()):
            item.add_marker(getattr(pytest.mark, name))
        if "qemu" in item.nodeid.lower():
            item.add_marker(pytest.mark.qemu)
        if not any(item.get_closest_marker(name) for name in NEEDS):
            item.add_marker(pytest.mark.unit)
