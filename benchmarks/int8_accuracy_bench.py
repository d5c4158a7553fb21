"""int8 accuracy and size table (issue 10): the five int8 models of ../shared/models.

Per model: how many compute nodes run on the integers and how many in float, weights bytes
(int8 model beside its float version), arena beside TFLite Micro's activation RAM, and the
agreement figures:

* `--requant fixed` (the default, TFLite's integer arithmetic): output elements equal to TFLite
  Micro's interpreter (the `tflite-micro` wheel) on the `.tflite` original, over 20 seeded
  random inputs;
* `--requant float` (onnxruntime's float-scale requantization): the largest difference to
  onnxruntime's output in output LSBs over 20 inputs, and the largest difference of any int8
  node given onnxruntime's values of its inputs (3 inputs).

Instructions under QEMU are benchmarks/int8.md's (`benchmarks/int8_bench.py`); the C's bytes
equal the simulator's (tests/test_int8_models.py).

    python benchmarks/int8_accuracy_bench.py [--out benchmarks/int8_accuracy.md] [--models kws,ad]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
sys.path.insert(0, str(ROOT / "tests"))

# key: (label, QDQ onnx, .tflite original, float onnx, TFLite Micro activation RAM (anchors))
MODELS = {
    "kws": ("KWS DS-CNN", "mlperf_tiny/kws_ref_model.onnx", "mlperf_tiny/kws_ref_model.tflite",
            "mlperf_tiny/kws_ref_model_float32.onnx", 16_000),
    "vww": ("VWW MobileNetV1 96", "mlperf_tiny/vww_96_int8.onnx", "mlperf_tiny/vww_96_int8.tflite",
            "mlperf_tiny/vww_96_float.onnx", 73_728),
    "resnet": ("IC ResNet-8", "mlperf_tiny/pretrainedResnet_quant.onnx",
               "mlperf_tiny/pretrainedResnet_quant.tflite", "mlperf_tiny/pretrainedResnet.onnx", 49_152),
    "ad": ("AD autoencoder", "mlperf_tiny/ad01_int8.onnx", "mlperf_tiny/ad01_int8.tflite",
           "mlperf_tiny/ad01_fp32.onnx", 768),
    "mcunet": ("MCUNet-VWW", "mcunet/mcunet_vww_qdq.onnx", "mcunet/mcunet_vww.tflite",
               "mcunet/mcunet_vww_deq.onnx", 161_472),
}
INPUTS = 20


def random_input(rng, shape, dtype) -> np.ndarray:
    if np.dtype(dtype) == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(-128, 128, shape).astype(np.int8)


def node_counts(graph) -> tuple[int, int]:
    from onnx2mcu.ops.int8 import node_precision

    kinds = [node_precision(n, graph) for n in graph.nodes]
    return kinds.count("int8"), kinds.count("float")


def tflm_agreement(result, tflite: Path) -> tuple[int, int]:
    from onnx2mcu.simulator import simulate
    from tflm_reference import input_details, tflm_outputs

    graph = result.graph
    (detail,) = input_details(tflite)
    (x_name,), (y_name,) = graph.inputs, graph.outputs
    rng = np.random.default_rng(2024)
    equal = total = 0
    for _ in range(INPUTS):
        x = random_input(rng, tuple(detail["shape"]), detail["dtype"])
        (want,) = tflm_outputs(tflite, [x])
        got = simulate(graph, result.schedule, {x_name: x}).outputs[y_name]
        equal += int(np.sum(got == want.reshape(got.shape)))
        total += got.size
    return equal, total


def ort_output_lsb(result, path: Path) -> float:
    import onnxruntime as ort
    from onnx2mcu.simulator import simulate

    graph = result.graph
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (x_name,), (y_name,) = graph.inputs, graph.outputs
    lsb = 1.0
    if graph.tensors[y_name].dtype.numpy == np.float32:  # a float output after a DequantizeLinear
        dq = next(n for n in graph.nodes if n.outputs == [y_name])
        lsb = float(graph.tensors[dq.inputs[1]].data)
    rng = np.random.default_rng(11)
    worst = 0.0
    for _ in range(INPUTS):
        x = random_input(rng, graph.tensors[x_name].shape, graph.tensors[x_name].dtype.numpy)
        got = simulate(graph, result.schedule, {x_name: x}).outputs[y_name]
        want = session.run([y_name], {x_name: x})[0]
        worst = max(worst, float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) / lsb)
    return worst


def ort_node_lsb(result, path: Path) -> int:
    """Largest int8 node difference when every node starts from onnxruntime's values."""
    import onnx
    from onnx2mcu.ops.int8 import int8_params
    from onnx2mcu.ops.registry import run_reference
    from test_int8_models import onnxruntime_with_intermediates

    graph = result.graph
    produced = {o for n in onnx.load(str(path)).graph.node for o in n.output}
    checked = [t for n in graph.nodes if int8_params(n, graph) is not None for t in n.outputs if t in produced]
    session = onnxruntime_with_intermediates(path, graph, checked)
    (x_name,) = graph.inputs
    rng = np.random.default_rng(7)
    worst = 0
    for _ in range(3):
        x = random_input(rng, graph.tensors[x_name].shape, graph.tensors[x_name].dtype.numpy)
        reference = dict(zip(checked, session.run(checked, {x_name: x})))
        env = {x_name: x}
        for node in graph.nodes:
            args = [env[i] if i in env else (graph.tensors[i].data if i else None) for i in node.inputs]
            for out, value in zip(node.outputs, run_reference(node, args, graph)):
                env[out] = value
                if out in reference:
                    diff = np.abs(value.astype(np.int32) - reference[out].astype(np.int32))
                    worst = max(worst, int(diff.max()))
                    env[out] = reference[out]
    return worst


def measure(key: str) -> dict:
    from onnx2mcu.pipeline import Options, run

    label, qdq, tflite, float_model, tflm_arena = MODELS[key]
    fixed = run(SHARED / qdq, Options(stop_after="schedule", scheduler="greedy", requant="fixed"))
    floatq = run(SHARED / qdq, Options(stop_after="schedule", scheduler="greedy", requant="float"))
    float_weights = run(SHARED / float_model, Options(stop_after="optimize")).graph.weights_bytes
    int8_nodes, float_nodes = node_counts(fixed.graph)
    equal, total = tflm_agreement(fixed, SHARED / tflite)
    return {"label": label, "int8": int8_nodes, "float": float_nodes,
            "weights": fixed.graph.weights_bytes, "float_weights": float_weights,
            "arena": fixed.schedule.arena_bytes, "tflm_arena": tflm_arena,
            "tflm_equal": equal, "tflm_total": total,
            "ort_out": ort_output_lsb(floatq, SHARED / qdq), "ort_node": ort_node_lsb(floatq, SHARED / qdq)}


def table(rows: list[dict]) -> str:
    lines = ["| model | int8 nodes | float nodes | weights (B) | float weights (B) | ratio | arena (B) | "
             "TFLM activations (B) | = TFLite Micro (fixed) | max vs ort output (float) | "
             "max vs ort per node (float) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        share = 100.0 * r["tflm_equal"] / r["tflm_total"]
        lines.append(f"| {r['label']} | {r['int8']} | {r['float']} | {r['weights']:,} | {r['float_weights']:,} | "
                     f"{r['weights'] / r['float_weights']:.3f}x | {r['arena']:,} | {r['tflm_arena']:,} | "
                     f"{r['tflm_equal']:,}/{r['tflm_total']:,} ({share:.1f}%) | {r['ort_out']:g} LSB | "
                     f"{r['ort_node']} LSB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "int8_accuracy.md"))
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    if not SHARED.exists():
        print(f"{SHARED} is absent: nothing to measure", file=sys.stderr)
        return 2
    from onnx2mcu.version import __version__

    rows = [measure(key) for key in args.models.split(",")]
    text = (f"# int8 accuracy and size: the five int8 models of ../shared/models\n\n"
            f"Generated by `python benchmarks/int8_accuracy_bench.py` (onnx2mcu {__version__}); "
            f"do not edit by hand.\n\n"
            f"Nodes: compute nodes on the integers / in float (the Q/DQ at float graph edges not counted). "
            f"Weights: our weights blob beside the float model's. Agreement: `--requant fixed` outputs equal "
            f"to TFLite Micro's interpreter on the .tflite original over {INPUTS} seeded inputs; "
            f"`--requant float` largest output difference to onnxruntime (ORT_ENABLE_ALL, its QDQ fusions) "
            f"in output LSBs over {INPUTS} inputs, and the largest int8 node difference given onnxruntime's "
            f"inputs. onnxruntime leaves some DQ→Conv→Relu→Q groups unfused and runs them in float "
            f"(MLAS float conv, CPU-dependent summation order), so a rare tie there can differ by 1 LSB "
            f"and a Softmax downstream can amplify it. Instructions: benchmarks/int8.md.\n\n"
            + table(rows) + "\n")
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
