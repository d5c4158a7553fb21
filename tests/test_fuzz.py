"""A deterministic sample of the front-door fuzzer (benchmarks/fuzz.py): >= 300 mutants of
small real models and conformance cases through inspect / simulate / compile, with zero
tracebacks, internal errors, crashes, hangs or memory blow-ups."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("onnx2mcu_fuzz", ROOT / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(spec)
sys.modules["onnx2mcu_fuzz"] = fuzz
spec.loader.exec_module(fuzz)

MUTANTS = 300
SEEDS = fuzz.seed_models(max_conformance=60, max_model_bytes=150_000, seed=0)
needs_seeds = pytest.mark.skipif(not SEEDS, reason="../shared (models, conformance cases) not present")


def test_classify():
    assert fuzz.classify(0, "") == "success"
    assert fuzz.classify(1, "") == "success"  # simulate disagreed: a verdict, not a failure
    assert fuzz.classify(2, "onnx2mcu: error: x.onnx: bad\n") == "clean error"
    assert fuzz.classify(2, "onnx2mcu: error: a\nonnx2mcu: error: b\n") == "traceback"
    assert fuzz.classify(2, "Traceback (most recent call last):\n  File ...\nValueError: x\n") == "traceback"
    assert fuzz.classify("traceback", "ValueError") == "traceback"
    assert fuzz.classify(70, "onnx2mcu: internal error (...)") == "internal"
    assert fuzz.classify(3, "onnx2mcu: error: out of memory") == "memory"
    assert fuzz.classify("memory", "") == "memory"


@needs_seeds
def test_mutants_are_deterministic():
    a = [fuzz.mutate(i, SEEDS, 7) for i in range(40)]
    b = [fuzz.mutate(i, SEEDS, 7) for i in range(40)]
    assert [(m.family, m.command, m.data, m.extra_files) for m in a] == \
           [(m.family, m.command, m.data, m.extra_files) for m in b]
    assert {m.family for m in a} == set(fuzz.FAMILIES)
    assert len({m.data for m in a}) > 30  # they do differ from each other


@needs_seeds
def test_fuzz_sample_has_no_tracebacks_crashes_hangs_or_blowups(tmp_path):
    results = fuzz.run_mutants(MUTANTS, seed=0, jobs=2, timeout=120, seeds=SEEDS,
                               reproducers=tmp_path / "reproducers")
    print("\n" + fuzz.table(results))
    assert len(results) == MUTANTS
    bad = [r for r in results if r.outcome in fuzz.BAD]
    details = "\n\n".join(f"{r.outcome} {r.mutant.family} {r.mutant.command} {r.mutant.seed_path}:\n"
                          f"{r.stderr[-1500:]}" for r in bad[:5])
    assert not bad, f"{len(bad)} bad outcome(s), reproducers in {tmp_path / 'reproducers'}:\n{details}"
    outcomes = {r.outcome for r in results}
    assert {"success", "clean error"} <= outcomes  # the sample reaches both sides of the door
