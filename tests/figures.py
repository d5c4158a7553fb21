"""Print a module's measured figures as a markdown table at the end of the test session."""
from __future__ import annotations


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 1e-2:
        return f"{value:.2e}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(request, rows: dict[str, dict], columns: list[str]) -> None:
    """rows: {model: {column: value}}; written past pytest's output capture."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not rows:
        return
    lines = ["", "| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(row.get(c)) for c in columns) + " |")
    with capture.global_and_fixture_disabled():
        for line in lines:
            reporter.write_line(line)
