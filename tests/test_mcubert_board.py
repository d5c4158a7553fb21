"""MCUBERT's claim on a board (issue 15, item 5): int8 BERT-tiny at 512 tokens on a NUCLEO-F746ZG.

BERT-tiny (the transformers export, full 30,522-token vocabulary, random seeded weights) quantized
by quantize_static (QDQ), compiled with `--weights-budget board --embeddings-int8 --ram-budget 256KB
--int8-io`: the word embeddings are compressed (int8 factors) until the flash image fits 1 MiB,
the embeddings and every layer run as TiledRows regions.  The nucleo-f746zg project links (its
ELF is the proof: flash <= 1 MiB, RAM <= 320 KiB, arena <= 256 KiB); the same build for an
mps2-an500 (Cortex-M7, emulated) given the F746ZG's flash and RAM runs under QEMU and gives the
simulator's bytes.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from onnx2mcu.pipeline import Options, run

pytestmark = [pytest.mark.slow, pytest.mark.c]

HAVE_ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "make"))
HAVE_QEMU = HAVE_ARM and shutil.which("qemu-system-arm") is not None
SEQ = 512
AS_F746 = """name = "an500-as-f746zg"
core = "cortex-m7"
qemu_machine = "mps2-an500"
flash = "1M"
ram = "320K"
description = "mps2-an500 (Cortex-M7, emulated) with the flash and RAM of a NUCLEO-F746ZG"
"""
OPTIONS = dict(weights_budget="board", embeddings_int8=True, ram_budget=256 * 1024, int8_io=True,
               scheduler="greedy")


@pytest.fixture(scope="module")
def bert_tiny_512(tmp_path_factory):
    pytest.importorskip("transformers")
    from helpers_export import export_bert_fixed
    from helpers_quantize import CONFIGS, quantize

    folder = tmp_path_factory.mktemp("bert512")
    source = export_bert_fixed(folder / "bert_tiny_512.onnx", seq=SEQ)
    return quantize(source, folder / "bert_tiny_512.qdq.onnx", CONFIGS["s8-perchannel-sym"], vocab=30522)


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc or make missing")
def test_bert_tiny_512_links_for_the_nucleo_f746zg(bert_tiny_512, tmp_path):
    from onnx2mcu.board_check import board_build
    from onnx2mcu.targets import get_board

    out = tmp_path / "f746"
    result = run(bert_tiny_512, Options(output=out, board="nucleo-f746zg", **OPTIONS))
    arena = result.schedule.arena_bytes
    sizes = board_build(out, get_board("nucleo-f746zg"))
    emb = result.optimization["embedding_compression"]
    print(f"BERT-tiny seq {SEQ} nucleo-f746zg: ELF flash {sizes['flash_bytes']:,} B, RAM "
          f"{sizes['ram_bytes']:,} B, arena {arena:,} B, embeddings {emb['ratio']}x")
    assert sizes["flash_bytes"] <= 1024 * 1024
    assert sizes["ram_bytes"] <= 320 * 1024
    assert arena <= 256 * 1024
    assert sum(n.op_type == "TiledRows" for n in result.graph.nodes) >= 3


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc or qemu-system-arm missing")
def test_bert_tiny_512_under_qemu_with_the_f746zg_memory_is_bit_exact(bert_tiny_512, tmp_path):
    from onnx2mcu.board_file import load_board_file
    from test_int8_models import run_c

    board_file = tmp_path / "an500_as_f746zg.toml"
    board_file.write_text(AS_F746)
    out = tmp_path / "an500"
    result = run(bert_tiny_512, Options(output=out, board=load_board_file(board_file), simulate=True,
                                        check_onnxruntime=False, **OPTIONS))
    expected = result.simulation.result.outputs
    outputs, _ = run_c(out, "qemu")
    hidden = next(name for name in expected if expected[name].dtype == np.int8)  # --int8-io
    assert outputs[hidden].reshape(expected[hidden].shape).tobytes() == expected[hidden].tobytes()
    # the pooler is a float Tanh island: the C library's tanhf and numpy's tanh differ by a few ulp
    pooled = expected["pooler_output"]
    np.testing.assert_allclose(outputs["pooler_output"].reshape(pooled.shape), pooled, rtol=1e-6, atol=1e-7)
