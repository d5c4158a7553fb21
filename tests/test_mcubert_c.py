"""runtime_c/o2m_mcubert.c against the numpy references of onnx2mcu/ops/mcubert.py.

The kernels are called through ctypes on random shapes and tile sizes
(hypothesis): tiled attention with and without the K/V cache (including
tiles that borrow the output's unwritten rows), tiled FFN, and the
clustered embedding lookup.  Then the whole chain: a compressed, tiled
BERT-tiny compiled to C, run on the host and under QEMU (Cortex-M4), equal
to the simulator.
"""
from __future__ import annotations

import ctypes
import shutil
from ctypes import POINTER, Structure, c_float, c_int32, c_void_p

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c_harness import (CORTEX_M4_FLAGS, STRICT_CFLAGS, build_and_load, compile_objects, declare,
                       have_compiler, ptr, runtime_dir)
from onnx2mcu.ir import Node
from onnx2mcu.ops import lookup
from onnx2mcu.ops.mcubert import attention_tile_plan

SOURCE = "o2m_mcubert.c"


class AttentionParams(Structure):
    _fields_ = [(name, c_int32) for name in ("batch", "seq", "hidden", "heads", "head_dim",
                                             "out_dim", "tile_q", "tile_k", "cache_kv",
                                             "nan_to_zero")] + \
               [(name, c_float) for name in ("q_scale", "k_scale", "s_scale")] + \
               [(name, c_int32) for name in ("mask_batch_stride", "mask_row_stride")]


class FfnParams(Structure):
    _fields_ = [(name, c_int32) for name in ("rows", "hidden", "inner", "out_dim", "tile_rows",
                                             "tile_f", "activation")]


class ClembParams(Structure):
    _fields_ = [(name, c_int32) for name in ("vocab", "dim", "clusters", "map_bytes")]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if not have_compiler("gcc"):
        pytest.skip("gcc not installed")
    lib = build_and_load([runtime_dir() / SOURCE], tmp_path_factory.mktemp("mcubert"),
                         name="mcubert")
    declare(lib, "o2m_tiled_attention_f32", None, POINTER(AttentionParams), *[c_void_p] * 12)
    declare(lib, "o2m_attention_tile_rows", c_int32, POINTER(AttentionParams), c_int32,
            POINTER(c_int32))
    declare(lib, "o2m_tiled_ffn_f32", None, POINTER(FfnParams), *[c_void_p] * 7)
    for suffix in ("s64", "s32"):
        declare(lib, f"o2m_clustered_embedding_{suffix}", None, POINTER(ClembParams), c_int32,
                *[c_void_p] * 6)
        declare(lib, f"o2m_clustered_embedding_int8_{suffix}", None, POINTER(ClembParams), c_int32,
                *[c_void_p] * 6, c_int32, c_void_p)
    return lib


def reference(op_type: str, inputs: list, **attrs) -> np.ndarray:
    node = Node("n", op_type, [f"i{i}" if v is not None else "" for i, v in enumerate(inputs)],
                ["y"], attrs, domain="onnx2mcu")
    return lookup(op_type, "onnx2mcu").reference(node, inputs)[0]


def f32(rng, *shape, scale=1.0):
    return np.ascontiguousarray((rng.standard_normal(shape) * scale).astype(np.float32))


# ----- attention ----------------------------------------------------------------------
attention_cases = st.fixed_dictionaries({
    "heads": st.integers(1, 4), "head_dim": st.sampled_from([1, 3, 4, 8]),
    "hidden": st.integers(1, 12), "seq": st.integers(1, 24), "batch": st.integers(1, 2),
    "out_extra": st.integers(-1, 2), "tile_q": st.integers(1, 30), "tile_k": st.integers(1, 30),
    "cache_kv": st.booleans(), "mask": st.sampled_from(["none", "row", "full", "batch"]),
    "biases": st.booleans(), "nan_to_zero": st.booleans(), "seed": st.integers(0, 2**16),
})


def run_attention(lib, case, x, w, mask):
    B, S, H = x.shape
    nh, dh = case["heads"], case["head_dim"]
    out_dim = w["wo"].shape[1]
    plan = attention_tile_plan(S, out_dim, dh, min(case["tile_q"], S), min(case["tile_k"], S),
                               int(case["cache_kv"]))
    tq, tk = min(case["tile_q"], S), min(case["tile_k"], S)
    scratch_floats = tq * dh + tq * S + (2 * S * dh if case["cache_kv"] else tk * dh)
    if mask is None:
        mbs = mrs = 0
    else:
        mbs = mask.shape[-2] * S if mask.shape[0] > 1 else 0
        mrs = S if mask.shape[-2] == S else 0
    p = AttentionParams(B, S, H, nh, dh, out_dim, tq, tk, int(case["cache_kv"]),
                        int(case["nan_to_zero"]), 0.5, 1.25, 0.75, mbs, mrs)
    guard = 64
    scratch = np.full(scratch_floats + guard, np.float32(7.0), dtype=np.float32)
    y = np.full((B, S, out_dim), np.nan, dtype=np.float32)
    lib.o2m_tiled_attention_f32(ctypes.byref(p), ptr(x), ptr(w["wq"]), ptr(w["bq"]), ptr(w["wk"]),
                                ptr(w["bk"]), ptr(w["wv"]), ptr(w["bv"]), ptr(w["wo"]),
                                ptr(w["bo"]), ptr(mask), ptr(scratch), ptr(y))
    assert np.all(scratch[scratch_floats:] == np.float32(7.0)), "kernel wrote past its scratch"
    # the C tile plan is the Python one
    t0, c_plan = 0, []
    while t0 < S:
        flag = c_int32(0)
        rows = lib.o2m_attention_tile_rows(ctypes.byref(p), t0, ctypes.byref(flag))
        c_plan.append((t0, rows, bool(flag.value)))
        t0 += rows
    assert c_plan == plan
    return y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=attention_cases)
def test_tiled_attention_matches_reference_and_untiled(lib, case):
    rng = np.random.default_rng(case["seed"])
    B, S, H, nh, dh = case["batch"], case["seq"], case["hidden"], case["heads"], case["head_dim"]
    A = nh * dh
    out_dim = max(1, H + case["out_extra"])
    x = f32(rng, B, S, H)
    ws = case.get("weight_scale", 1.0)
    w = {"wq": f32(rng, H, A, scale=ws), "wk": f32(rng, H, A, scale=ws), "wv": f32(rng, H, A, scale=ws),
         "wo": f32(rng, A, out_dim, scale=ws)}
    for key, n in (("bq", A), ("bk", A), ("bv", A), ("bo", out_dim)):
        w[key] = f32(rng, n) if case["biases"] else None
    mask = {"none": None, "row": f32(rng, 1, 1, 1, S, scale=2.0),
            "full": f32(rng, 1, 1, S, S, scale=2.0), "batch": f32(rng, B, 1, 1, S, scale=2.0)}[
        case["mask"]]
    attrs = dict(heads=nh, q_scale=0.5, k_scale=1.25, s_scale=0.75,
                 nan_to_zero=int(case["nan_to_zero"]), tile_q=case["tile_q"],
                 tile_k=case["tile_k"], cache_kv=int(case["cache_kv"]))
    inputs = [x, w["wq"], w["bq"], w["wk"], w["bk"], w["wv"], w["bv"], w["wo"], w["bo"], mask]
    want = reference("TiledAttention", inputs, **attrs)
    got = run_attention(lib, case, x, w, mask)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(want).max())))
    # the plain math, untiled, float64
    q = (x @ w["wq"] + (w["bq"] if w["bq"] is not None else 0)) * 0.5
    k = (x @ w["wk"] + (w["bk"] if w["bk"] is not None else 0)) * 1.25
    v = x @ w["wv"] + (w["bv"] if w["bv"] is not None else 0)
    split = lambda t: t.astype(np.float64).reshape(B, S, nh, dh).transpose(0, 2, 1, 3)  # noqa: E731
    s = split(q) @ split(k).transpose(0, 1, 3, 2) * 0.75
    if mask is not None:
        s = s + mask
    e = np.exp(s - s.max(-1, keepdims=True))
    ctx = (e / e.sum(-1, keepdims=True)) @ split(v)
    plain = ctx.transpose(0, 2, 1, 3).reshape(B, S, A) @ w["wo"] + (w["bo"] if w["bo"] is not None else 0)
    np.testing.assert_allclose(got, plain, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(plain).max())))


@pytest.mark.parametrize("cache_kv", [False, True])
def test_tiled_attention_bert_sized(lib, cache_kv):
    """BERT-tiny's head shapes at S = 48, smallest tiles: without the cache the first tiles
    borrow the output's unwritten rows (the plan says so), and the result is the reference's."""
    case = {"heads": 2, "head_dim": 64, "hidden": 128, "seq": 48, "batch": 1, "out_extra": 0,
            "tile_q": 1, "tile_k": 3, "cache_kv": cache_kv, "mask": "row", "biases": True,
            "nan_to_zero": True, "seed": 5, "weight_scale": 128 ** -0.5}
    plan = attention_tile_plan(48, 128, 64, 1, 3, int(cache_kv))
    assert any(free for _, _, free in plan) != cache_kv
    test_tiled_attention_matches_reference_and_untiled.hypothesis.inner_test(lib, case)


def test_attention_nan_guard(lib):
    """A row whose mask is all -inf gives NaN probabilities; nan_to_zero makes that row bo."""
    rng = np.random.default_rng(1)
    S, H, nh, dh = 5, 4, 2, 2
    x = f32(rng, 1, S, H)
    w = {"wq": f32(rng, H, 4), "wk": f32(rng, H, 4), "wv": f32(rng, H, 4), "wo": f32(rng, 4, H),
         "bq": None, "bk": None, "bv": None, "bo": f32(rng, H)}
    mask = np.zeros((1, 1, S, S), dtype=np.float32)
    mask[0, 0, 2, :] = -np.inf
    for cache in (True, False):
        case = {"heads": nh, "head_dim": dh, "tile_q": 2, "tile_k": 2, "cache_kv": cache,
                "nan_to_zero": True}
        got = run_attention(lib, case, x, w, mask)
        np.testing.assert_array_equal(got[0, 2], w["bo"])
        assert np.isfinite(got).all()
        want = reference("TiledAttention", [x, w["wq"], None, w["wk"], None, w["wv"], None, w["wo"],
                                            w["bo"], mask], heads=nh, nan_to_zero=1, tile_q=2,
                         tile_k=2, cache_kv=int(cache), q_scale=0.5, k_scale=1.25, s_scale=0.75)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ----- FFN ---------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 20), hidden=st.integers(1, 10), inner=st.integers(1, 40),
       out_dim=st.integers(1, 10), tile_rows=st.integers(1, 25), tile_f=st.integers(1, 45),
       activation=st.sampled_from(["gelu", "gelu_tanh", "relu"]), biases=st.booleans(),
       seed=st.integers(0, 2**16))
def test_tiled_ffn(lib, rows, hidden, inner, out_dim, tile_rows, tile_f, activation, biases, seed):
    rng = np.random.default_rng(seed)
    x, w1, w2 = f32(rng, rows, hidden), f32(rng, hidden, inner), f32(rng, inner, out_dim)
    b1, b2 = (f32(rng, inner), f32(rng, out_dim)) if biases else (None, None)
    tr, tf = min(tile_rows, rows), min(tile_f, inner)
    p = FfnParams(rows, hidden, inner, out_dim, tr, tf, {"gelu": 0, "gelu_tanh": 1, "relu": 2}[activation])
    scratch = np.full(tr * tf + 16, np.float32(3.0), dtype=np.float32)
    y = np.full((rows, out_dim), np.nan, dtype=np.float32)
    lib.o2m_tiled_ffn_f32(ctypes.byref(p), ptr(x), ptr(w1), ptr(b1), ptr(w2), ptr(b2), ptr(scratch),
                          ptr(y))
    assert np.all(scratch[tr * tf:] == np.float32(3.0))
    want = reference("TiledFFN", [x, w1, b1, w2, b2], activation=activation, tile_rows=tile_rows,
                     tile_f=tile_f)
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(want).max())))
    # untiled (one tile) in C gives the same bits: the inner sum continues across tiles
    p1 = FfnParams(rows, hidden, inner, out_dim, rows, inner, p.activation)
    scratch1 = np.zeros(rows * inner, dtype=np.float32)
    y1 = np.empty_like(y)
    lib.o2m_tiled_ffn_f32(ctypes.byref(p1), ptr(x), ptr(w1), ptr(b1), ptr(w2), ptr(b2),
                          ptr(scratch1), ptr(y1))
    np.testing.assert_array_equal(y, y1)


# ----- clustered embedding ----------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(vocab=st.integers(2, 600), dim=st.integers(1, 9), clusters=st.integers(1, 5),
       ranks=st.lists(st.integers(0, 4), min_size=5, max_size=5), id32=st.booleans(),
       seed=st.integers(0, 2**16))
def test_clustered_embedding(lib, vocab, dim, clusters, ranks, id32, seed):
    from onnx2mcu.graph_opt.embedding import Plan, build

    rng = np.random.default_rng(seed)
    clusters = min(clusters, vocab)
    labels = np.concatenate([np.arange(clusters), rng.integers(0, clusters, vocab - clusters)])
    rng.shuffle(labels)
    counts = np.bincount(labels, minlength=clusters)
    table = f32(rng, vocab, dim)
    plan = Plan(clusters, labels, np.minimum(np.array(ranks[:clusters]), np.minimum(counts, dim)),
                counts, 0, 0.0)
    comp = build(table, plan)
    ids = rng.integers(-vocab - 3, vocab + 3, size=17)
    ids = ids.astype(np.int32 if id32 else np.int64)
    want = reference("ClusteredEmbedding", [ids, comp.id_map, comp.meta, comp.a, comp.p],
                     vocab=vocab, dim=dim, map_bytes=comp.map_bytes)
    p = ClembParams(vocab, dim, clusters, comp.map_bytes)
    y = np.full((ids.size, dim), np.nan, dtype=np.float32)
    fn = lib.o2m_clustered_embedding_s32 if id32 else lib.o2m_clustered_embedding_s64
    fn(ctypes.byref(p), ids.size, ptr(ids), ptr(comp.id_map), ptr(comp.meta), ptr(comp.a),
       ptr(comp.p), ptr(y))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    bad = (ids < -vocab) | (ids >= vocab)
    assert np.all(y[bad] == 0.0)
    # full rank everywhere reconstructs the table
    if np.all(plan.ranks == np.minimum(counts, dim)):
        ok = ~bad
        rows = table[np.where(ids[ok] < 0, ids[ok] + vocab, ids[ok])]
        np.testing.assert_allclose(y[ok], rows, rtol=1e-4, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(vocab=st.integers(2, 600), dim=st.integers(1, 40), clusters=st.integers(1, 5),
       ranks=st.lists(st.integers(0, 40), min_size=5, max_size=5), id32=st.booleans(),
       scale=st.sampled_from([1e-3, 1.0, 300.0]), row_scales=st.booleans(), seed=st.integers(0, 2**16))
def test_clustered_embedding_int8_bit_exact(lib, vocab, dim, clusters, ranks, id32, scale, row_scales, seed):
    """int8 factors: the C kernel gives the reference's bits (exact int32 sums, then the same
    float32 products and add), for random clusters, ranks up to full and any scale."""
    from onnx2mcu.graph_opt.embedding import Plan, build, quantize_factors

    rng = np.random.default_rng(seed)
    clusters = min(clusters, vocab)
    labels = np.concatenate([np.arange(clusters), rng.integers(0, clusters, vocab - clusters)])
    rng.shuffle(labels)
    counts = np.bincount(labels, minlength=clusters)
    table = f32(rng, vocab, dim, scale=scale)
    plan = Plan(clusters, labels, np.minimum(np.array(ranks[:clusters]), np.minimum(counts, dim)),
                counts, 0, 0.0)
    comp = quantize_factors(build(table, plan), row_scales)
    ids = rng.integers(-vocab - 3, vocab + 3, size=23).astype(np.int32 if id32 else np.int64)
    want = reference("ClusteredEmbeddingInt8", [ids, comp.id_map, comp.meta, comp.a_q, comp.p_q, comp.scales],
                     vocab=vocab, dim=dim, map_bytes=comp.map_bytes, row_scales=int(row_scales))
    p = ClembParams(vocab, dim, clusters, comp.map_bytes)
    y = np.full((ids.size, dim), np.nan, dtype=np.float32)
    fn = lib.o2m_clustered_embedding_int8_s32 if id32 else lib.o2m_clustered_embedding_int8_s64
    fn(ctypes.byref(p), ids.size, ptr(ids), ptr(comp.id_map), ptr(comp.meta), ptr(comp.a_q),
       ptr(comp.p_q), ptr(comp.scales), int(row_scales), ptr(y))
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))
    bad = (ids < -vocab) | (ids >= vocab)
    assert np.all(y[bad] == 0.0)
    # and it is the table, within int8 rounding
    ok = ~bad
    rows = comp.rows(np.where(ids[ok] < 0, ids[ok] + vocab, ids[ok]))
    np.testing.assert_array_equal(rows, y[ok])
    if np.all(plan.ranks == np.minimum(counts, dim)) and ok.any():
        exact = table[np.where(ids[ok] < 0, ids[ok] + vocab, ids[ok])]
        assert np.abs(y[ok] - exact).max() <= 0.08 * np.abs(table).max() + 1e-30


def test_int8_embeddings_compiled_on_host(tmp_path):
    """The pass with --embeddings-int8 on a small BERT, compiled for the host: the C outputs
    equal the simulator's (the lookup is bit-exact; the float layers within rounding)."""
    from onnx2mcu.build import compile_model
    from onnx2mcu.examples import build_bert_tiny
    from onnx2mcu.frontend import load
    from onnx2mcu.graph_opt import OptimizeOptions, optimize
    from onnx2mcu.graph_opt import embedding as emb
    from onnx2mcu.runner import run_project_dir
    from onnx2mcu.scheduler import schedule
    from onnx2mcu.simulator import simulate

    if not have_compiler("gcc"):
        pytest.skip("gcc not installed")
    model = build_bert_tiny(vocab=2048, hidden=32, heads=2, ffn=64, layers=1, seq=16, max_positions=16)
    path = tmp_path / "bert.onnx"
    import onnx

    onnx.save(model, str(path))
    saved = emb.CLUSTER_CANDIDATES
    emb.CLUSTER_CANDIDATES = (1, 2)
    try:
        graph, done = optimize(load(path, None), OptimizeOptions(compress_embeddings="8x",
                                                                 embedding_int8=True))
    finally:
        emb.CLUSTER_CANDIDATES = saved
    assert "ClusteredEmbeddingInt8" in {n.op_type for n in graph.nodes}
    rng = np.random.default_rng(2)
    values = {"input_ids": rng.integers(0, 2048, (1, 16)).astype(np.int64),
              "attention_mask": np.ones((1, 16), dtype=np.int64)}
    sim = simulate(graph, schedule(graph, "greedy"), values).outputs
    out = tmp_path / "project"
    compile_model(str(path), out, board="host", graph=graph, optimization=done, inputs=values,
                  scheduler="greedy")
    run = run_project_dir(str(out), "host", timeout=300)
    for name, want in sim.items():
        np.testing.assert_allclose(run["outputs"][name], want, rtol=1e-4,
                                   atol=1e-4 * max(1.0, float(np.abs(want).max())))


def test_compiles_strict_for_cortex_m4(tmp_path):
    if not have_compiler("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed")
    compile_objects([runtime_dir() / SOURCE], tmp_path, cc="arm-none-eabi-gcc",
                    cflags=(*STRICT_CFLAGS, "-O2", *CORTEX_M4_FLAGS))


# ----- end to end: compressed + tiled BERT-tiny in C --------------------------------------------
def test_compressed_tiled_bert_tiny_runs_on_host_and_qemu(tmp_path):
    """A transformers BERT-tiny export, embeddings compressed 16x and tiled for the least RAM
    (K/V recomputed, tiles borrowing output rows), compiled for mps2-an386: the host build and
    the Cortex-M4 build under QEMU give the simulator's outputs."""
    pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[export]')")
    pytest.importorskip("transformers", reason="transformers is not installed")
    from helpers_export import INPUT_SHAPES, SEQ, export_bert

    from onnx2mcu.build import compile_model
    from onnx2mcu.frontend import load
    from onnx2mcu.graph_opt import OptimizeOptions, optimize
    from onnx2mcu.runner import run_project_dir
    from onnx2mcu.scheduler import schedule
    from onnx2mcu.simulator import simulate

    path = export_bert(tmp_path / "bert_tiny.onnx", dynamo=False)
    graph, done = optimize(load(path, INPUT_SHAPES), OptimizeOptions(compress_embeddings="16x"))
    assert done["embedding_compression"]["ratio"] >= 16
    assert not done["tiling"]["attention"]["cache_kv"]
    ops = {n.op_type for n in graph.nodes}
    assert {"ClusteredEmbedding", "TiledAttention", "TiledFFN"} <= ops
    rng = np.random.default_rng(7)
    mask = np.ones((1, SEQ), dtype=np.int64)
    mask[0, 100:] = 0
    values = {"input_ids": rng.integers(0, 30522, (1, SEQ)).astype(np.int64), "attention_mask": mask}
    sched = schedule(graph, "greedy")
    sim = simulate(graph, sched, values).outputs
    out = tmp_path / "project"
    result = compile_model(str(path), out, board="mps2-an386", graph=graph, optimization=done,
                           inputs=values, scheduler="greedy")
    assert result.report["tiling"]["peak_bytes"] >= result.report["peak_bytes"]
    assert "o2m_mcubert.c" in result.report["kernels"]
    modes = ["host"]
    if shutil.which("qemu-system-arm") and have_compiler("arm-none-eabi-gcc"):
        modes.append("qemu")
    for mode in modes:
        run = run_project_dir(str(out), mode, timeout=600)
        for name, want in sim.items():
            got = run["outputs"][name]
            scale = max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=f"{mode} {name}")
        if mode == "qemu":
            assert run["ram_bytes"] >= result.report["arena_bytes"]
            assert run["inference_instructions"] > 0
