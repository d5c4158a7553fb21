"""graph_opt/table_fusion.py: elementwise chains of one int8 tensor that include a float island
become one Int8Table node, exactly (the chain's own references on every int8 value).

On BERT-tiny quantized by quantize_static: GELU's DequantizeLinear -> Div -> Erf -> QuantizeLinear
-> Add -> Mul -> Mul and the exporters' NaN guard after Softmax (DequantizeLinear -> IsNaN -> Where
-> QuantizeLinear) become tables; the simulator's outputs keep every byte (both requant modes), and
the C on the host gives the simulator's bytes.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from onnx2mcu.graph_opt import pipeline as graph_pipeline
from onnx2mcu.ops.int8 import TABLE
from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate

pytestmark = [pytest.mark.slow]
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
SEQ, VOCAB = 64, 1000


@pytest.fixture(scope="module")
def bert_qdq(tmp_path_factory):
    pytest.importorskip("transformers")
    from helpers_export import export_bert_fixed
    from helpers_quantize import CONFIGS, quantize

    folder = tmp_path_factory.mktemp("tables")
    source = export_bert_fixed(folder / "bert_tiny.onnx", seq=SEQ, vocab_size=VOCAB)
    return quantize(source, folder / "bert_tiny.qdq.onnx", CONFIGS["s8-perchannel-sym"], vocab=VOCAB)


def _feed(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, VOCAB, (1, SEQ)).astype(np.int64),
            "attention_mask": np.ones((1, SEQ), np.int64)}


def _without_table_fusion(monkeypatch):
    monkeypatch.setattr(graph_pipeline, "PASSES", [p for p in graph_pipeline.PASSES if p[0] != "table_fusion"])


@pytest.mark.parametrize("requant", ["fixed", "float"])
def test_gelu_and_nan_guard_become_tables_with_the_same_bytes(bert_qdq, requant, monkeypatch):
    fused = run(bert_qdq, Options(stop_after="schedule", scheduler="greedy", tile="none", requant=requant))
    report = fused.optimization["table_fusion"]
    replaced = [r for chain in report["chains"] for r in chain["replaced"]]
    assert report["tables"] == 4, report  # per layer: GELU and the NaN guard
    assert sum(r.startswith("Erf ") for r in replaced) == 2 and sum(r.startswith("IsNaN ") for r in replaced) == 2
    assert not any(n.op_type in ("Erf", "IsNaN", "Div") for n in fused.graph.nodes)
    _without_table_fusion(monkeypatch)
    plain = run(bert_qdq, Options(stop_after="schedule", scheduler="greedy", tile="none", requant=requant))
    assert "table_fusion" not in plain.optimization
    assert sum(n.op_type == TABLE for n in plain.graph.nodes) == 0
    for seed in range(3):
        got = simulate(fused.graph, fused.schedule, _feed(seed)).outputs
        want = simulate(plain.graph, plain.schedule, _feed(seed)).outputs
        assert {k: v.tobytes() for k, v in got.items()} == {k: v.tobytes() for k, v in want.items()}, seed


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
def test_tables_in_c_on_the_host(bert_qdq, tmp_path):
    from test_int8_models import run_c

    out = tmp_path / "out"
    result = run(bert_qdq, Options(output=out, simulate=True, check_onnxruntime=False, scheduler="greedy"))
    assert result.optimization["table_fusion"]["tables"] == 4
    expected = result.simulation.result.outputs
    outputs, _ = run_c(out, "host")
    hidden = expected["last_hidden_state"]
    assert outputs["last_hidden_state"].reshape(hidden.shape).tobytes() == hidden.tobytes()
    pooled = expected["pooler_output"]  # a float Tanh island: the C library's tanhf, a few ulp from numpy
    np.testing.assert_allclose(outputs["pooler_output"].reshape(pooled.shape), pooled, rtol=1e-6, atol=1e-7)
