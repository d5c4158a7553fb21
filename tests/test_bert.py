"""Real BERT graphs: Hugging Face BertModel (BERT-tiny sizes, random weights) exported by torch.

Both exporters are covered: the TorchScript one (`dynamo=False`, opset 17,
dynamic batch and sequence axes) and the default dynamo one (needs
onnxscript; emits opset 18+ with the Gelu op and its own mask idioms).
The frontend must bind the dynamic axes from --input-shape, fold the
shape arithmetic and simplify the attention-mask chains; the simulator
must then agree with onnxruntime.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[export]')")
pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[export]')")

from helpers_export import INPUT_SHAPES, SEQ, export_bert  # noqa: E402

from onnx2mcu.cli import main  # noqa: E402

MAX_REL_ERR = 1e-4
SHAPE_ARGS = [arg for name, dims in INPUT_SHAPES.items()
              for arg in ("--input-shape", f"{name}={','.join(map(str, dims))}")]


@pytest.fixture(scope="session")
def bert_exports(tmp_path_factory) -> dict:
    """Exported once per session; an exporter that cannot run leaves its reason instead."""
    folder = tmp_path_factory.mktemp("bert")
    exports = {}
    for kind, dynamo in (("torchscript", False), ("dynamo", True)):
        if dynamo and importlib.util.find_spec("onnxscript") is None:
            exports[kind] = "the dynamo exporter needs onnxscript (pip install -e '.[export]')"
            continue
        try:
            exports[kind] = export_bert(folder / f"bert_tiny_{kind}.onnx", dynamo=dynamo)
        except ImportError as exc:  # the dynamo exporter needs onnxscript
            exports[kind] = f"{kind} exporter unavailable: {exc}"
    return exports


def export_path(bert_exports, kind):
    value = bert_exports[kind]
    if isinstance(value, str):
        pytest.skip(value)
    return value


def simulate(argv, capsys) -> dict:
    capsys.readouterr()
    code = main(["simulate", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize("kind", ["torchscript", "dynamo"])
def test_bert_export_simulates(kind, bert_exports, capsys):
    path = export_path(bert_exports, kind)
    data = simulate([str(path), *SHAPE_ARGS], capsys)
    assert data["max_scaled_err"] <= MAX_REL_ERR
    assert data["inputs"] == {"input_ids": [1, SEQ], "attention_mask": [1, SEQ]}
    assert data["outputs"] == {"last_hidden_state": [1, SEQ, 128], "pooler_output": [1, 128]}
    assert data["arena_bytes"] >= data["peak_bytes"] > 0
    ops = {entry["op"] for entry in data["schedule"]}
    # shape arithmetic and the mask idioms are gone
    assert not ops & {"Shape", "ConstantOfShape", "Range", "Concat", "Expand", "GatherND", "And",
                      "Equal"}, ops


@pytest.mark.parametrize("kind", ["torchscript", "dynamo"])
def test_bert_mask_stays_small(kind, bert_exports):
    """The additive mask is built at [1,1,1,S] and broadcast by the Add, never widened to
    [1,1,S,S]; only the NaN guards after Softmax work at score size."""
    from onnx2mcu.frontend import load

    graph = load(export_path(bert_exports, kind), INPUT_SHAPES)
    producers = graph.producers()
    for node in graph.nodes:
        out = graph.tensors[node.outputs[0]]
        if node.op_type in ("Where", "Cast", "And", "Expand", "Not") and out.numel >= SEQ * SEQ:
            guard = producers.get(node.inputs[0])
            assert guard is not None and guard.op_type == "IsNaN", (node.name, out.shape)


@pytest.mark.parametrize("kind", ["torchscript", "dynamo"])
def test_bert_export_with_padding(kind, bert_exports, tmp_path, capsys):
    """A padded batch exercises the attention mask for real."""
    path = export_path(bert_exports, kind)
    rng = np.random.default_rng(3)
    mask = np.ones((1, SEQ), dtype=np.int64)
    mask[0, 90:] = 0
    npz = tmp_path / "inputs.npz"
    np.savez(npz, input_ids=rng.integers(0, 30522, (1, SEQ)).astype(np.int64), attention_mask=mask)
    data = simulate([str(path), *SHAPE_ARGS, "--inputs", str(npz)], capsys)
    assert data["max_scaled_err"] <= MAX_REL_ERR


def test_bert_tiny_example_matches_transformers():
    """`--example bert-tiny` computes what BertModel computes with the same weights."""
    import onnxruntime as ort
    from transformers import BertConfig, BertModel

    from onnx2mcu.examples import build_bert_tiny, bert_tiny_weights

    model = BertModel(BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=512)).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in bert_tiny_weights().items()},
                          strict=True)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 30522, (1, SEQ)).astype(np.int64)
    mask = np.ones((1, SEQ), dtype=np.int64)
    mask[0, 100:] = 0
    session = ort.InferenceSession(build_bert_tiny().SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    hidden, pooled = session.run(None, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    for got, want in ((hidden, ref.last_hidden_state.numpy()), (pooled, ref.pooler_output.numpy())):
        assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))
