"""Print (or write) the SHA-256 of every file `compile` generates for the reference models.

The architecture refactor (docs/ARCHITECTURE.md) must not change the generated
C; tests/test_golden_c.py compares today's files with the hashes stored in
tests/golden/hashes.json. Run `python tests/golden/generate.py --write` only when
a change to the generated files is intended, and say why in the commit.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "models"
HASHES = Path(__file__).with_name("hashes.json")

# (case name, model file under ../shared/models or example name, board)
MODELS = [
    ("ad01_fp32", "mlperf_tiny/ad01_fp32.onnx", "mps2-an386"),
    ("ad01_int8", "mlperf_tiny/ad01_int8.onnx", "mps2-an386"),
    ("kws_ref_model", "mlperf_tiny/kws_ref_model.onnx", "mps2-an386"),
    ("kws_ref_model_float32", "mlperf_tiny/kws_ref_model_float32.onnx", "mps2-an386"),
    ("pretrainedResnet", "mlperf_tiny/pretrainedResnet.onnx", "mps2-an386"),
    ("pretrainedResnet_quant", "mlperf_tiny/pretrainedResnet_quant.onnx", "mps2-an386"),
    ("vww_96_float", "mlperf_tiny/vww_96_float.onnx", "mps2-an386"),
    ("vww_96_int8", "mlperf_tiny/vww_96_int8.onnx", "mps2-an386"),
    ("mcunet_vww_deq", "mcunet/mcunet_vww_deq.onnx", "mps2-an386"),
    ("mcunet_vww_qdq", "mcunet/mcunet_vww_qdq.onnx", "mps2-an386"),
]
EXAMPLES = [("example_cnn", "cnn", "host"), ("example_dscnn", "dscnn", "host"),
            ("example_bert-tiny", "bert-tiny", "host")]
SKIP = {"source.onnx", "test_inputs.npz"}  # copies of the input, not generated


def generate_case(source: str, board: str, is_example: bool, dump: Path | None = None) -> dict[str, str]:
    from onnx2mcu.build import compile_model
    from onnx2mcu.examples import build_example

    model = build_example(source) if is_example else str(SHARED / source)
    with tempfile.TemporaryDirectory(prefix="onnx2mcu-golden-") as tmp:
        out = Path(tmp) / "out"
        compile_model(model, out, board=board)
        if dump is not None:
            shutil.copytree(out, dump, dirs_exist_ok=True)
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*")) if p.is_file() and p.name not in SKIP}


def cases():
    return [(n, s, b, False) for n, s, b in MODELS] + [(n, s, b, True) for n, s, b in EXAMPLES]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--dump", type=Path, help="also copy every generated folder under DIR/<case>")
    args = parser.parse_args()
    result = {name: generate_case(source, board, ex, args.dump / name if args.dump else None)
              for name, source, board, ex in cases()}
    if args.write:
        HASHES.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    else:
        json.dump(result, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
