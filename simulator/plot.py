"""The memory plots of `simulate` (matplotlib, headless), from the report dictionaries.

    --plot         live bytes per step: the peak marked and the op at the peak named on the
                   x axis, the arena, and the RAM the board leaves to the arena
    --plot-layout  the arena as the planner laid it out: one rectangle per planned buffer
                   (tensors sharing bytes through aliasing or in-place ops share one), x = the
                   steps it is live, y = its offset and size

`memory_figure` / `layout_figure` return the figure and what they marked (for tests and for
callers that want to restyle); `plot_memory` / `plot_layout` write the PNG atomically.
"""
from __future__ import annotations

import io
from typing import Any

from onnx2mcu.fileio import write_atomic

KIB = 1024.0
# when the board's RAM is this many times the peak or more, the plot keeps the live bytes
# readable and writes the RAM figure at the top instead of drawing its line far above
RAM_OFF_SCALE = 3.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ram_label(ram: dict | None) -> str | None:
    if not ram or ram.get("bytes") is None:
        return None
    return f"{ram.get('label', 'RAM for the arena')}: {ram['bytes'] / KIB:.1f} KiB"


def memory_figure(report: dict, ram: dict | None = None) -> tuple[Any, dict]:
    """Live KiB per step.  `ram`: {"bytes": RAM the arena may take, "label": ...} or None (host).
    Returns (figure, marks): marks["peak_label"] is the x-axis name of the peak's op,
    marks["ram_line"] the RAM line's y in KiB (None: off scale or no board), marks["ram_label"]."""
    plt = _pyplot()
    live = report["live_bytes"]
    steps = range(len(live))
    fig, ax = plt.subplots(figsize=(9, 3.8), dpi=110)
    ax.step(steps, [b / KIB for b in live], where="mid", color="#2b6cb0", label="live bytes")
    ax.fill_between(steps, [b / KIB for b in live], step="mid", alpha=0.25, color="#2b6cb0")
    peak, peak_kib = report["peak_step"], report["peak_bytes"] / KIB
    ax.plot([peak], [peak_kib], "o", color="#c53030")
    ax.annotate(f"peak {peak_kib:.1f} KiB", (peak, peak_kib), textcoords="offset points", xytext=(8, -4),
                fontsize=8, color="#c53030", va="top")
    ax.axhline(report["arena_bytes"] / KIB, ls="--", lw=0.8, color="gray", label="arena")
    marks: dict = {"peak_step": peak, "ram_line": None, "ram_label": _ram_label(ram)}
    top = max(peak_kib, report["arena_bytes"] / KIB, 1e-3) * 1.15
    if marks["ram_label"] is not None:
        ram_kib = ram["bytes"] / KIB
        if ram_kib <= RAM_OFF_SCALE * max(peak_kib, 1e-3):
            ax.axhline(ram_kib, ls="-", lw=1.2, color="#2f855a", label=marks["ram_label"])
            marks["ram_line"] = ram_kib
            top = max(top, ram_kib * 1.08)
        else:
            ax.text(0.99, 0.97, f"{marks['ram_label']} (above the plot)", transform=ax.transAxes, ha="right",
                    va="top", fontsize=8, color="#2f855a")
    ax.set_ylim(0, top)
    # the op at the peak, named on the x axis under its step
    marks["peak_label"] = f"{report.get('peak_op') or ''} {report.get('peak_node') or ''}".strip()
    ax.set_xticks([peak], minor=True)
    ax.set_xticklabels([marks["peak_label"]], minor=True, fontsize=7, color="#c53030")
    ax.tick_params(axis="x", which="minor", pad=14, length=10, color="#c53030")
    ax.set_xlabel("schedule step")
    ax.set_ylabel("live KiB")
    ax.set_title(f"{report['model']}  ({report['scheduler']['method']})", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig, marks


def layout_figure(report: dict, ram: dict | None = None) -> tuple[Any, dict]:
    """Offset x step rectangles, one per planned buffer of report["buffers"].  Returns (figure,
    marks): marks["rectangles"] is how many were drawn, marks["ram_label"] the RAM line's."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    buffers = report["buffers"]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    palette = ("#90cdf4", "#9ae6b4", "#fbd38d", "#feb2b2", "#d6bcfa", "#fbb6ce")
    drawn = 0
    for i, b in enumerate(buffers):
        scratch = b["label"].startswith("scratch:")
        ax.add_patch(Rectangle((b["first"] - 0.5, b["offset"] / KIB), b["last"] - b["first"] + 1, b["bytes"] / KIB,
                               facecolor="#e2e8f0" if scratch else palette[i % len(palette)],
                               edgecolor="#2d3748", lw=0.5, hatch="//" if scratch else None))
        drawn += 1
    steps = max((b["last"] for b in buffers), default=0) + 1
    arena = report["arena_bytes"] / KIB
    ax.axhline(arena, ls="--", lw=0.8, color="gray", label=f"arena {arena:.1f} KiB")
    marks = {"rectangles": drawn, "ram_label": _ram_label(ram), "ram_line": None}
    top = max(arena, 1e-3) * 1.1
    if marks["ram_label"] is not None and ram["bytes"] / KIB <= RAM_OFF_SCALE * max(arena, 1e-3):
        ax.axhline(ram["bytes"] / KIB, lw=1.2, color="#2f855a", label=marks["ram_label"])
        marks["ram_line"] = ram["bytes"] / KIB
        top = max(top, ram["bytes"] / KIB * 1.05)
    elif marks["ram_label"] is not None:
        ax.text(0.99, 0.97, f"{marks['ram_label']} (above the plot)", transform=ax.transAxes, ha="right",
                va="top", fontsize=8, color="#2f855a")
    # name the largest buffers inside their rectangles when there is room
    for b in sorted(buffers, key=lambda b: -b["bytes"])[:12]:
        if b["bytes"] / KIB > top * 0.04 and b["last"] - b["first"] >= max(1, steps // 40):
            ax.text(b["first"] - 0.4, (b["offset"] + b["bytes"] / 2) / KIB, b["label"][:28], fontsize=6,
                    va="center", clip_on=True)
    ax.set_xlim(-0.5, steps - 0.5)
    ax.set_ylim(0, top)
    ax.set_xlabel("schedule step")
    ax.set_ylabel("arena offset (KiB)")
    ax.set_title(f"{report['model']}: arena layout, {drawn} planned buffers "
                 f"({report['scheduler']['method']})", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig, marks


def _save(fig, path: str) -> None:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def plot_memory(report: dict, path: str, ram: dict | None = None) -> dict:
    fig, marks = memory_figure(report, ram)
    _save(fig, path)
    return marks


def plot_layout(report: dict, path: str, ram: dict | None = None) -> dict:
    fig, marks = layout_figure(report, ram)
    _save(fig, path)
    return marks
