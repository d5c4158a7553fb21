"""Instructions per MAC: the figures behind the latency estimate of `compile` / `simulate`
(onnx2mcu/latency.py).

For the five MLPerf Tiny + MCUNet models, float32 and int8: MACs (onnx2mcu.report.macs over the
optimized graph, the count the estimate multiplies) and instructions of one inference counted
under QEMU by simulator/qemu_plugin.c.
- Cortex-M4F (mps2-an386): read from benchmarks/c_backend.md (float32) and benchmarks/int8.md
  (int8, portable and arm-dsp kernels), not measured again here.
- Cortex-M3 without FPU (mps2-an385, the stand-in of M0+/M3 boards): measured here, float32 in
  soft float and int8 on the portable kernels (`--scheduler greedy`, -O2); every run's outputs
  agree with the reference (`onnx2mcu run` exits 1 otherwise).
The pooled figure of a column is its instructions summed over the five models divided by their
MACs summed: the MAC-weighted mean, so large models weigh as much as their work.

    python benchmarks/latency_bench.py [--out benchmarks/latency.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
M3_BOARD = "mps2-an385"
# key: (label, float model, its row label in c_backend.md, int8 model, its row label in int8.md)
MODELS = {
    "kws": ("KWS DS-CNN", "models/mlperf_tiny/kws_ref_model_float32.onnx", "kws_ref_model_float32",
            "models/mlperf_tiny/kws_ref_model.onnx", "KWS DS-CNN"),
    "vww": ("VWW MobileNetV1 96", "models/mlperf_tiny/vww_96_float.onnx", "vww_96_float",
            "models/mlperf_tiny/vww_96_int8.onnx", "VWW MobileNetV1 96"),
    "resnet": ("IC ResNet-8", "models/mlperf_tiny/pretrainedResnet.onnx", "pretrainedResnet",
               "models/mlperf_tiny/pretrainedResnet_quant.onnx", "IC ResNet-8"),
    "ad": ("AD autoencoder", "models/mlperf_tiny/ad01_fp32.onnx", "ad01_fp32",
           "models/mlperf_tiny/ad01_int8.onnx", "AD autoencoder"),
    "mcunet": ("MCUNet-VWW", "models/mcunet/mcunet_vww_deq.onnx", "mcunet_vww_deq",
               "models/mcunet/mcunet_vww_qdq.onnx", "MCUNet-VWW"),
}
COLUMNS = ("m4_float32", "m4_int8_portable", "m4_int8_arm_dsp", "m3_float32_soft", "m3_int8_portable")


def model_macs(path: Path) -> int:
    """The MACs the estimate multiplies: report.macs over the graph compile would plan."""
    from onnx2mcu.pipeline import Options, run
    from onnx2mcu.report import macs

    return sum(macs(run(str(path), Options(stop_after="optimize")).graph).values())


def table_rows(md: Path) -> dict[str, list[str]]:
    """The cells of every row of the markdown tables in `md`, by their first cell."""
    rows = {}
    for line in md.read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


def m4_figures() -> dict[str, dict[str, int]]:
    """Cortex-M4 instructions per model, from the two benchmark files (column by header name)."""
    c_rows = table_rows(ROOT / "benchmarks" / "c_backend.md")
    i_rows = table_rows(ROOT / "benchmarks" / "int8.md")
    c_col = c_rows["model"].index("instructions")
    portable, fast = i_rows["model"].index("ours portable"), i_rows["model"].index("ours arm-dsp")
    found = {}
    for key, (_, _, c_label, _, i_label) in MODELS.items():
        c_row = next(cells for first, cells in c_rows.items() if first.split(" (")[0] == c_label)
        found[key] = {"m4_float32": number(c_row[c_col]), "m4_int8_portable": number(i_rows[i_label][portable]),
                      "m4_int8_arm_dsp": number(i_rows[i_label][fast])}
    return found


def measure_m3(model: Path, out: Path) -> int:
    from onnx2mcu.pipeline import Options, run
    from onnx2mcu.runner import run_project_dir

    run(str(model), Options(output=out, board=M3_BOARD, scheduler="greedy", force=True))
    data = run_project_dir(str(out), "qemu", timeout=3600)
    if not data["ok"]:
        raise SystemExit(f"{model}: the C's outputs disagree with the reference on {M3_BOARD}")
    return int(data["inference_instructions"])


def pooled(rows: list[dict], column: str, macs: str) -> float:
    return sum(r[column] for r in rows) / sum(r[macs] for r in rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "latency.md"))
    args = parser.parse_args(argv)
    if not SHARED.exists():
        print(f"{SHARED} is absent: nothing to measure", file=sys.stderr)
        return 2
    m4 = m4_figures()
    rows = []
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp:
        for key, (label, float_rel, _, int8_rel, _) in MODELS.items():
            row = {"label": label, "float_macs": model_macs(SHARED / float_rel),
                   "int8_macs": model_macs(SHARED / int8_rel), **m4[key]}
            row["m3_float32_soft"] = measure_m3(SHARED / float_rel, Path(tmp) / f"{key}-float")
            row["m3_int8_portable"] = measure_m3(SHARED / int8_rel, Path(tmp) / f"{key}-int8")
            print(f"{label:20s} M3 float {row['m3_float32_soft']:>14,}  int8 {row['m3_int8_portable']:>14,}",
                  flush=True)
            rows.append(row)
    macs_of = {c: "int8_macs" if "int8" in c else "float_macs" for c in COLUMNS}
    head = ("| model | float32 MACs | int8 MACs | M4F float32 | M4 int8 portable | M4 int8 arm-dsp | "
            "M3 float32 (soft) | M3 int8 portable |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [f"{r[c]:,} ({r[c] / r[macs_of[c]]:.2f})" for c in COLUMNS]
        lines.append(f"| {r['label']} | {r['float_macs']:,} | {r['int8_macs']:,} | " + " | ".join(cells) + " |")
    lines.append("| **pooled instructions / MAC** | | | "
                 + " | ".join(f"**{pooled(rows, c, macs_of[c]):.2f}**" for c in COLUMNS) + " |")
    from onnx2mcu.version import __version__

    text = "\n".join([
        "# Instructions per MAC (the latency estimate's figures)",
        "",
        f"Generated by `python benchmarks/latency_bench.py` (onnx2mcu {__version__}); do not edit by hand.",
        "",
        "Instructions of one inference (between the harness's markers, QEMU TCG plugin) and, in brackets,",
        "per MAC (onnx2mcu.report.macs over the optimized graph). Cortex-M4F columns: QEMU mps2-an386, from",
        "benchmarks/c_backend.md (float32) and benchmarks/int8.md (int8). Cortex-M3 columns: QEMU",
        f"mps2-an385 (no FPU: float32 in soft float; int8 on the portable kernels), measured here with",
        "`--scheduler greedy`, every run's outputs agreeing with the reference. *Pooled*: instructions",
        "summed over the five models / their MACs summed. `compile` and `simulate` multiply a model's",
        "MACs by the pooled figure of its kind (onnx2mcu/latency.py; tests/test_reports.py checks the",
        "figures there against this file).",
        "",
        *lines,
        "",
    ])
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
