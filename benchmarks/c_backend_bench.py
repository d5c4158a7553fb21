"""C backend benchmark: every float model of ../shared/models, BERT-tiny (seq 128) and the
PyTorch recurrent models of tests/test_recurrent_models.py and the U-Net of
tests/test_models_unet.py on a
Cortex-M4 (QEMU mps2-an386).

Writes benchmarks/c_backend.md: arena and weight bytes, ELF flash and RAM, the exact
number of instructions of one inference under QEMU, max_rel_err against
onnxruntime, and the seconds `onnx2mcu compile` and the arm-none-eabi build take.

    python benchmarks/c_backend_bench.py [--out benchmarks/c_backend.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = {
    "ad01_fp32 (AD autoencoder)": "models/mlperf_tiny/ad01_fp32.onnx",
    "kws_ref_model_float32 (KWS DS-CNN)": "models/mlperf_tiny/kws_ref_model_float32.onnx",
    "pretrainedResnet (IC ResNet-8)": "models/mlperf_tiny/pretrainedResnet.onnx",
    "vww_96_float (VWW MobileNetV1)": "models/mlperf_tiny/vww_96_float.onnx",
    "mcunet_vww_deq (MCUNet-VWW)": "models/mcunet/mcunet_vww_deq.onnx",
}
BOARD = "mps2-an386"


def bert_model(tmp: Path):
    """BERT-tiny from transformers when torch is installed, else the built-in equivalent."""
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers_export import INPUT_SHAPES, export_bert

        return "BERT-tiny (transformers, seq 128)", str(export_bert(tmp / "bert.onnx", dynamo=False)), INPUT_SHAPES
    except ImportError:
        from onnx2mcu.examples import build_example

        return "BERT-tiny (built-in example, seq 128)", build_example("bert-tiny"), None


RECURRENT = {
    "kws_gru": "KWS 2-layer GRU(64), 49x10 MFCC",
    "kws_lstm": "KWS LSTM(64), 49x10 MFCC",
    "tagger": "BiLSTM(32) tagger, 20 tokens",
    "crnn": "CRNN: conv + LSTM(32), 49x10",
}


def recurrent_models(tmp: Path) -> list:
    """The PyTorch recurrent models of tests/test_recurrent_models.py (TorchScript exporter)."""
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        import test_recurrent_models as nets
    except ImportError:  # torch absent
        return []
    store = nets.Store(tmp)
    return [(f"{name} ({label}, PyTorch)", str(store.model(name, "torchscript")), None)
            for name, label in RECURRENT.items()]


def unet_model(tmp: Path) -> list:
    """The small PyTorch U-Net of tests/test_models_unet.py (ConvTranspose, Resize, skips)."""
    try:
        import torch  # noqa: F401  (the `export` extra)
    except ImportError:
        return []
    sys.path.insert(0, str(ROOT / "tests"))
    import test_models_unet as unet

    torch, model = unet._unet_module()
    path = tmp / "small_unet.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), input_names=["image"],
                      output_names=["mask"], opset_version=17, dynamo=False)
    return [("small_unet (U-Net: ConvTranspose + Resize, 3x32x32, PyTorch)", str(path), None)]


def measure(name: str, model, input_shapes, tmp: Path) -> dict:
    from onnx2mcu.build import compile_model
    from onnx2mcu.runner import run_project_dir
    from onnx2mcu.simulator.run_c import build

    start = time.perf_counter()
    result = compile_model(model, tmp / name.split()[0], board=BOARD, input_shapes=input_shapes)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    build(result.out_dir, BOARD)
    build_s = time.perf_counter() - start
    data = run_project_dir(str(result.out_dir), "qemu", timeout=600)
    return {"model": name, "ops": len(result.graph.nodes), "arena": result.report["arena_bytes"],
            "weights": result.report["weights_bytes"], "flash": data["flash_bytes"],
            "ram": data["ram_bytes"], "instructions": data["inference_instructions"] or data["instructions"],
            "rel_err": data["max_rel_err"], "compile_s": compile_s, "build_s": build_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "c_backend.md"))
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found", file=sys.stderr)
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="o2m-cbench-") as tmp_name:
        tmp = Path(tmp_name)
        for name, rel in MODELS.items():
            rows.append(measure(name, str(SHARED / rel), None, tmp))
            print(rows[-1], file=sys.stderr)
        name, model, shapes = bert_model(tmp)
        rows.append(measure(name, model, shapes, tmp))
        print(rows[-1], file=sys.stderr)
        for name, model, shapes in recurrent_models(tmp) + unet_model(tmp):
            rows.append(measure(name, model, shapes, tmp))
            print(rows[-1], file=sys.stderr)
    lines = [
        "# C backend on Cortex-M4 (QEMU mps2-an386)",
        "",
        "Written by `python benchmarks/c_backend_bench.py`. Instructions: one inference "
        "(between the harness markers), counted exactly by the QEMU TCG plugin. Flash and RAM from "
        "`arm-none-eabi-size -A` (RAM = .data + .bss, the arena included; stack/heap reservations "
        "excluded; BERT-tiny's word-embedding table sits in the board's external PSRAM region and "
        "counts as flash). max_rel_err: QEMU outputs vs onnxruntime. Default options "
        "(ILP scheduler; transformer tiling on, its tiles sized to the board's 4 MiB RAM "
        "budget, so BERT-tiny runs with the largest tiles that fit: fewer instructions, a larger "
        "arena than `simulate` without a board, which aims at the tiling floor + 3%).",
        "",
        "| model | ops | arena B | weights B | ELF flash B | ELF RAM B | instructions | max_rel_err | "
        "compile s | arm-gcc build s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['ops']} | {r['arena']:,} | {r['weights']:,} | {r['flash']:,} | "
                     f"{r['ram']:,} | {r['instructions']:,} | {r['rel_err']:.2e} | {r['compile_s']:.2f} | "
                     f"{r['build_s']:.1f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
