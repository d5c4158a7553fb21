"""Transformer tiling (graph_opt/tiling.py, MCUBERT §5): recognition, equivalence, peak memory.

* Real exports of BERT-tiny from transformers (TorchScript and dynamo
  exporters): every attention and FFN block is recognised, the tiled graph
  equals onnxruntime on the original model, and its peak is far below the
  untiled model's.
* Property test (hypothesis): random head counts, head sizes, sequence
  lengths, FFN widths, masks and tile sizes (with and without the K/V cache);
  the tiled graph run by the simulator equals onnxruntime on the untiled model.
* Peak memory grows linearly with the sequence: within 3.3 * S * hidden * 4
  bytes for S = 64 .. 512 (BERT-tiny and BERT-mini sizes).
* Tile sizes come from the budget: a large budget buys the K/V cache and big
  tiles, and the peak never exceeds what was asked.
"""
from __future__ import annotations

import copy
import importlib.util
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnx2mcu.examples import build_bert_tiny
from onnx2mcu.frontend import load
from onnx2mcu.graph_opt import OptimizeOptions, optimize
from onnx2mcu.graph_opt.pipeline import PassContext
from onnx2mcu.graph_opt.tiling import rewrite, tile_transformer
from onnx2mcu.scheduler import schedule
from onnx2mcu.simulator import simulate
from onnx2mcu.simulator.compare import compare, run_onnxruntime

MAX_REL_ERR = 1e-4
UNTILED_OPS = {"Softmax", "Erf", "Gelu", "IsNaN"}


def bert_example(**config):
    """The onnx.helper BERT of onnx2mcu.examples (HF BertModel's graph) at the given sizes."""
    cfg = dict(vocab=500, max_positions=max(config.get("seq", 128), 8))
    cfg.update(config)
    return build_bert_tiny(**cfg)


def inputs_for(seq: int, vocab: int, pad_from: int | None = None, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    mask = np.ones((1, seq), dtype=np.int64)
    if pad_from is not None:
        mask[0, pad_from:] = 0
    return {"input_ids": rng.integers(0, vocab, (1, seq)).astype(np.int64), "attention_mask": mask}


def run_tiled(model, graph, values) -> float:
    sched = schedule(graph, "file-order")
    ours = simulate(graph, sched, values).outputs
    return compare(ours, run_onnxruntime(model, values, graph.outputs)).max_scaled_err


# ----- real exports -------------------------------------------------------------------------
torch_missing = importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    if torch_missing:
        pytest.skip("torch/transformers not installed (pip install -e '.[export]')")
    from helpers_export import export_bert

    folder = tmp_path_factory.mktemp("tiling")
    out = {"torchscript": export_bert(folder / "ts.onnx", dynamo=False)}
    if importlib.util.find_spec("onnxscript") is not None:
        out["dynamo"] = export_bert(folder / "dynamo.onnx", dynamo=True)
    return out


@pytest.mark.parametrize("kind", ["torchscript", "dynamo"])
def test_real_export_is_tiled_and_exact(kind, exports):
    from helpers_export import INPUT_SHAPES, SEQ
    from onnx2mcu.frontend.load import read_model

    if kind not in exports:
        pytest.skip("the dynamo exporter needs onnxscript")
    path = exports[kind]
    graph = load(path, INPUT_SHAPES)
    untiled_file_order = schedule(copy.deepcopy(graph), "file-order").peak_bytes
    graph, done = optimize(graph, OptimizeOptions(tile="auto"))
    report = done["tiling"]
    assert report["attention"]["blocks"] == 2 and report["ffn"]["blocks"] == 2
    assert report["attention"]["heads"] == 2
    ops = {n.op_type for n in graph.nodes}
    assert not ops & UNTILED_OPS, ops
    assert sum(n.op_type == "MatMul" for n in graph.nodes) == 0
    values = inputs_for(SEQ, 30522, pad_from=90)
    assert run_tiled(read_model(path)[0], graph, values) <= MAX_REL_ERR
    peak = schedule(graph, "file-order").peak_bytes
    assert peak == report["peak_bytes"]
    hidden = 128
    assert peak <= 3.3 * SEQ * hidden * 4
    if kind == "torchscript":  # MCUBERT's figure for BERT-tiny
        assert untiled_file_order / peak >= 3.5, (untiled_file_order, peak)


def test_cli_simulate_reports_tiling(exports, capsys):
    from helpers_export import SEQ

    from onnx2mcu.cli import main

    capsys.readouterr()
    code = main(["simulate", str(exports["torchscript"]), "--input-shape", f"input_ids=1,{SEQ}",
                 "--input-shape", f"attention_mask=1,{SEQ}", "--scheduler", "greedy", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["max_scaled_err"] <= MAX_REL_ERR
    assert data["tiling"]["attention"]["blocks"] == 2
    assert data["peak_bytes"] <= data["tiling"]["peak_bytes"]  # the scheduler never does worse
    code = main(["simulate", str(exports["torchscript"]), "--input-shape", f"input_ids=1,{SEQ}",
                 "--input-shape", f"attention_mask=1,{SEQ}", "--tile", "none", "--scheduler",
                 "file-order", "--json"])
    data_none = json.loads(capsys.readouterr().out)
    assert "tiling" not in data_none and data_none["peak_bytes"] > 3.5 * data["peak_bytes"]


# ----- equivalence over random shapes and tiles ------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads=st.integers(1, 4), head_dim=st.sampled_from([1, 2, 3, 8]), seq=st.integers(1, 33),
       ffn_extra=st.integers(1, 40), layers=st.integers(1, 2), pad=st.booleans(),
       tile_q=st.integers(1, 40), tile_k=st.integers(1, 40), cache_kv=st.booleans(),
       tile_rows=st.integers(1, 40), tile_f=st.integers(1, 48), seed=st.integers(0, 1000))
def test_tiling_equivalence_property(heads, head_dim, seq, ffn_extra, layers, pad, tile_q, tile_k,
                                     cache_kv, tile_rows, tile_f, seed):
    hidden = heads * head_dim
    ffn = hidden + ffn_extra  # an expanding FFN (as in every transformer) is what gets tiled
    model = bert_example(hidden=hidden, heads=heads, ffn=ffn, layers=layers, seq=seq, seed=seed)
    graph = load(model, None)
    attention, ffn_nodes = rewrite(graph)
    assert len(attention) == layers and len(ffn_nodes) == layers
    assert not {n.op_type for n in graph.nodes} & UNTILED_OPS
    for node in attention:
        node.attrs.update(tile_q=tile_q, tile_k=tile_k, cache_kv=int(cache_kv))
    for node in ffn_nodes:
        node.attrs.update(tile_rows=tile_rows, tile_f=tile_f)
    values = inputs_for(seq, 500, pad_from=max(1, seq // 2) if pad else None, seed=seed)
    assert run_tiled(model, graph, values) <= MAX_REL_ERR


def test_tiles_borrow_unwritten_output_rows():
    """Without the K/V cache the first query tiles are much larger than tile_q."""
    from onnx2mcu.ops.mcubert import attention_tile_plan

    plan = attention_tile_plan(seq=128, out_dim=128, head_dim=64, tile_q=2, tile_k=4, cache_kv=0)
    assert plan[0] == (0, (128 * 128 - 4 * 64) // (128 + 64 + 128), True)
    assert sum(rows for _, rows, _ in plan) == 128 and len(plan) < 30
    assert [t0 for t0, _, _ in plan] == sorted({t0 for t0, _, _ in plan})
    assert all(rows == 2 or t0 + rows == 128 for t0, rows, free in plan if not free)


def tile(graph, options: OptimizeOptions):
    """The tiling pass alone, as the pipeline runs it."""
    return tile_transformer(graph, PassContext.for_graph(graph, options))


def test_budget_sets_tile_sizes():
    model = bert_example(hidden=64, heads=4, ffn=256, layers=2, seq=64)
    base = load(model, None)
    floor_graph = copy.deepcopy(base)
    least = tile(floor_graph, OptimizeOptions())
    assert least["target_from"].startswith("floor")
    assert least["peak_bytes"] <= least["target_peak_bytes"]
    # a roomy budget buys the K/V cache and larger tiles, and stays within the budget
    roomy = copy.deepcopy(base)
    budget = 3 * least["peak_bytes"]
    report = tile(roomy, OptimizeOptions(ram_budget=budget))
    assert report["attention"]["cache_kv"] and report["fits"]
    assert report["peak_bytes"] <= budget
    assert report["ffn"]["tile_f"] > least["ffn"]["tile_f"]
    assert report["attention"]["macs_per_block"] < least["attention"]["macs_per_block"]
    # between the two: no cache, but as few K/V passes as fit
    # (a budget also pays for the harness's copies of the outputs, and 3% for fragmentation)
    middle = copy.deepcopy(base)
    outputs = sum(base.tensors[n].nbytes for n in base.outputs)
    report = tile(middle, OptimizeOptions(
        ram_budget=outputs + int(least["peak_bytes"] * 1.2 / 0.97)))
    assert report["fits"] and report["peak_bytes"] <= least["peak_bytes"] * 1.2
    assert not report["attention"]["cache_kv"]
    assert report["attention"]["kv_passes"] <= least["attention"]["kv_passes"]
    # a budget below the floor: smallest tiles, reported as not fitting
    tight = copy.deepcopy(base)
    report = tile(tight, OptimizeOptions(ram_budget=least["floor_peak_bytes"] // 2))
    assert not report["fits"] and report["peak_bytes"] == report["floor_peak_bytes"]
    # --tile none: nothing changes
    untouched = copy.deepcopy(base)
    assert tile(untouched, OptimizeOptions(tile="none")) is None
    assert [n.op_type for n in untouched.nodes] == [n.op_type for n in base.nodes]


@pytest.mark.parametrize("sizes", [dict(hidden=128, heads=2, ffn=512, layers=2),
                                   dict(hidden=256, heads=4, ffn=1024, layers=4)],
                         ids=["bert-tiny", "bert-mini"])
def test_peak_is_linear_in_sequence(sizes):
    peaks = {}
    for seq in (64, 128, 256, 512):
        graph = load(bert_example(seq=seq, **sizes), None)
        graph, done = optimize(graph, OptimizeOptions())
        peak = schedule(graph, "file-order").peak_bytes
        assert peak <= 3.3 * seq * sizes["hidden"] * 4, (seq, peak)
        peaks[seq] = peak
    # doubling S at most doubles the peak (plus the tiles' few percent)
    for s in (64, 128, 256):
        assert peaks[2 * s] <= 2.1 * peaks[s]


def test_not_rewritten_when_intermediates_escape():
    """Probabilities that are also a graph output must stay: the pattern is left alone."""
    import onnx
    from onnx import helper

    model = bert_example(hidden=8, heads=2, ffn=16, layers=1, seq=4)
    probs = next(n.output[0] for n in model.graph.node if n.op_type == "Softmax")
    model.graph.output.append(helper.make_tensor_value_info(probs, onnx.TensorProto.FLOAT, [1, 2, 4, 4]))
    graph = load(model, None)
    attention, ffn_nodes = rewrite(graph)
    assert attention == [] and len(ffn_nodes) == 1
    assert any(n.op_type == "Softmax" for n in graph.nodes)


def test_bottleneck_mlp_is_left_alone():
    """MatMul-Relu-MatMul whose inner width is not larger than its input is no FFN to tile."""
    model = bert_example(hidden=8, heads=2, ffn=8, layers=1, seq=4)
    graph = load(model, None)
    attention, ffn_nodes = rewrite(graph)
    assert len(attention) == 1 and ffn_nodes == []
