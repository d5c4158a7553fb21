"""Live bytes per step, peak marked, as a PNG (matplotlib, headless)."""
from __future__ import annotations

import io

from onnx2mcu.fileio import write_atomic


def plot_memory(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = report["live_bytes"]
    fig, ax = plt.subplots(figsize=(9, 3.5), dpi=110)
    ax.step(range(len(live)), [b / 1024 for b in live], where="mid", color="#2b6cb0")
    ax.fill_between(range(len(live)), [b / 1024 for b in live], step="mid", alpha=0.25, color="#2b6cb0")
    peak = report["peak_step"]
    ax.plot([peak], [report["peak_bytes"] / 1024], "o", color="#c53030")
    ax.annotate(f"peak {report['peak_bytes'] / 1024:.1f} KiB\n{report['peak_node']}",
                (peak, report["peak_bytes"] / 1024), textcoords="offset points", xytext=(8, -4),
                fontsize=8, color="#c53030", va="top")
    ax.axhline(report["arena_bytes"] / 1024, ls="--", lw=0.8, color="gray", label="arena")
    ax.set_xlabel("step")
    ax.set_ylabel("live KiB")
    ax.set_title(f"{report['model']}  ({report['scheduler']['method']})", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
