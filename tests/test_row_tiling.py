"""Row tiling of a quantized BERT (graph_opt/row_tiling.py, the TiledRows op): the int8 path of
`--tile auto` (issue 15, item 4).

BERT-tiny from the transformers export, quantized by onnxruntime's quantize_static (QDQ), runs
on the int8 kernels with float islands for LayerNorm, Softmax and GELU's Div.  Row tiling turns
the embeddings into one TiledRows node, and per layer the K/V projections into one and the query
path with the FFN into another, so the [heads, S, S] scores, the [S, FFN] activations and the
float islands' copies exist only for a tile.  The
outputs must be the untiled model's bytes for every tile size (one row, a size that leaves a
shorter last tile, the whole sequence), in the simulator, on the host and under QEMU.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from onnx2mcu.graph_opt import row_tiling
from onnx2mcu.ops.rows import ROWS, ROWS_ATTR
from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate

pytestmark = [pytest.mark.slow]

HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = HAVE_HOST and all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm"))
SEQ, VOCAB = 128, 1000


@pytest.fixture(scope="module")
def bert_qdq(tmp_path_factory):
    pytest.importorskip("transformers")
    from helpers_export import export_bert_fixed
    from helpers_quantize import CONFIGS, quantize

    folder = tmp_path_factory.mktemp("row_tiling")
    made = {}

    def get(config: str):
        if config not in made:
            source = folder / "bert_tiny.onnx"
            if not source.exists():
                export_bert_fixed(source, seq=SEQ, vocab_size=VOCAB)
            made[config] = quantize(source, folder / f"bert_tiny.{config}.onnx", CONFIGS[config], vocab=VOCAB)
        return made[config]
    return get


def _feed(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((1, SEQ), np.int64)
    mask[0, SEQ - 1 - seed * 7:] = 0  # padded tails: the mask takes part
    return {"input_ids": rng.integers(0, VOCAB, (1, SEQ)).astype(np.int64), "attention_mask": mask}


def _outputs(result, feed) -> dict[str, bytes]:
    got = simulate(result.graph, result.schedule, feed).outputs
    return {k: v.tobytes() for k, v in got.items()}


def _with_tile(path, tile: int, requant: str):
    """The auto-tiled graph with every region's tile set to `tile`, scheduled."""
    loaded = run(path, Options(stop_after="optimize", requant=requant, int8_io=True))
    graph = loaded.graph
    for node in graph.nodes:
        if node.op_type == ROWS:
            row_tiling.set_tile(graph, node, tile)
    return run(path, Options(stop_after="schedule", scheduler="file-order", requant=requant, int8_io=True),
               graph=graph, optimization=loaded.optimization)


@pytest.mark.parametrize("config,requant", [("s8-perchannel-sym", "fixed"), ("u8-pertensor-asym", "float")])
def test_every_layer_is_tiled_and_every_byte_kept(bert_qdq, config, requant):
    path = bert_qdq(config)
    # --int8-io: the hidden states leave as int8 (a float copy of them would be most of the tiled peak)
    plain = run(path, Options(stop_after="schedule", scheduler="file-order", tile="none", requant=requant,
                              int8_io=True))
    auto = run(path, Options(stop_after="schedule", scheduler="file-order", requant=requant, int8_io=True))
    regions = [n for n in auto.graph.nodes if n.op_type == ROWS]
    # the embeddings (lookup, position and type rows, LayerNorm); per layer: the K and V projection
    # chains, and the query path through the FFN's LayerNorm
    assert len(regions) == 5, [n.name for n in regions]
    first = [i.op_type for i in regions[0].attrs[ROWS_ATTR].nodes]
    assert first[0] == "Gather" and "LayerNormalization" in first, first
    big = [n for n in regions if any(i.op_type == "Softmax" for i in n.attrs[ROWS_ATTR].nodes)]
    assert len(big) == 2 and all(any(i.op_type == "LayerNormalization" for i in n.attrs[ROWS_ATTR].nodes)
                                 for n in big)
    report = auto.optimization["tiling"]
    print(f"{config} --requant {requant}: file-order peak {plain.schedule.peak_bytes} -> "
          f"{auto.schedule.peak_bytes} B, tile {report['rows']['tile_rows']} rows")
    # MCUBERT's execution-memory bar for BERT-tiny at S = 128: 3.5x (file order on both sides here)
    assert plain.schedule.peak_bytes >= 3.5 * auto.schedule.peak_bytes
    want = [_outputs(plain, _feed(seed)) for seed in range(3)]
    for tile in (1, 5, SEQ):
        tiled = _with_tile(path, tile, requant)
        for seed in range(3):
            assert _outputs(tiled, _feed(seed)) == want[seed], (tile, seed)


def _c_cases():
    return [pytest.param("host", ("host",), id="host"),
            pytest.param("mps2-an386", ("qemu",), id="mps2-an386",
                         marks=[pytest.mark.qemu, pytest.mark.skipif(not HAVE_QEMU, reason="no Arm toolchain or QEMU")])]


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
@pytest.mark.parametrize("board,modes", _c_cases())
def test_generated_c_runs_the_tiles_bit_exact(bert_qdq, board, modes, tmp_path):
    from test_int8_models import run_c

    path = bert_qdq("s8-perchannel-sym")
    # a budget the untiled model does not fit (on a board with RAM to spare nothing is tiled)
    budget = dict(ram_budget=100_000) if board != "host" else {}
    loaded = run(path, Options(stop_after="optimize", board=board, **budget))
    for node in loaded.graph.nodes:
        if node.op_type == ROWS:
            row_tiling.set_tile(loaded.graph, node, 5)  # 25 tiles of 5 rows and one of 3
    out = tmp_path / "out"
    result = run(path, Options(output=out, simulate=True, check_onnxruntime=False, board=board,
                               scheduler="greedy", force=True, **budget),
                 graph=loaded.graph, optimization=loaded.optimization)
    expected = result.simulation.result.outputs
    for mode in modes:
        outputs, _ = run_c(out, mode)
        hidden = expected["last_hidden_state"]  # the tiled regions' output, dequantized: exact
        assert outputs["last_hidden_state"].reshape(hidden.shape).tobytes() == hidden.tobytes(), mode
        # the pooler (after the regions) is a float Tanh island: the C library's tanhf and numpy's
        # tanh differ by a few units in the last place, tiled or not
        pooled = expected["pooler_output"]
        np.testing.assert_allclose(outputs["pooler_output"].reshape(pooled.shape), pooled, rtol=1e-6, atol=1e-7)
    model_c = (out / "model.c").read_text()
    assert "o2m_copy_blocks(" in model_c and "o2m_t < 25" in model_c
    plain = run(path, Options(stop_after="schedule", scheduler="greedy", tile="none", board=board))
    for name, value in simulate(plain.graph, plain.schedule, result.inputs).outputs.items():
        assert value.tobytes() == expected[name].tobytes(), name


def test_binarized_bert_layers_are_tiled_too():
    """A BERT whose linear layers are binarized (graph_opt/binarize.py: PackSigns, XnorGemm) is
    row-tiled like the int8 one, the binary projections inside the regions; same bytes."""
    pytest.importorskip("transformers")
    import torch
    from test_binary_e2e import binary_bert, layers

    seq = 64
    ids = torch.randint(0, 512, (1, seq), generator=torch.Generator().manual_seed(0))
    proto = layers.export(binary_bert(seq), (ids,), None, form="standard", input_names=["input_ids"],
                          output_names=["hidden"])
    plain = run(proto, Options(stop_after="schedule", scheduler="file-order", tile="none"))
    auto = run(proto, Options(stop_after="schedule", scheduler="file-order"))
    regions = [n for n in auto.graph.nodes if n.op_type == ROWS]
    inner = {i.op_type for n in regions for i in n.attrs[ROWS_ATTR].nodes}
    assert len(regions) == 4 and {"XnorGemm", "PackSigns", "Softmax"} <= inner, inner
    assert auto.schedule.peak_bytes < 0.5 * plain.schedule.peak_bytes
    feed = {"input_ids": ids.numpy()}
    assert _outputs(auto, feed) == _outputs(plain, feed)
