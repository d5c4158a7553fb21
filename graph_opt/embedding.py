"""Clustered low-rank embedding compression (DESIGN §5, MCUBERT): `--compress-embeddings`.

An embedding lookup is a Gather on a large constant table E [vocab, dim] with
run-time indices.  It becomes a `ClusteredEmbedding` (onnx2mcu/ops/mcubert.py):
the rows are grouped into clusters, and cluster c stores its mean row mu_c and
a rank-r_c truncated SVD of its centred rows, E_c - mu_c ~ A_c P_c.  A compact
id -> position map (`map_bytes` bytes per token id) puts each cluster's rows
in one contiguous range; with a single cluster no map is needed.

Bytes of a compressed table: map (vocab * map_bytes, 0 for one cluster) +
meta (20 per cluster) + 4 * sum_c (dim + r_c * (n_c + dim)).

Search, adapted from MCUBERT's two stages to having no training data (the
objective is the table's reconstruction error instead of task loss):
1. number of clusters: for c in 1, 2, 4, ... (k-means, seeded, so the pass is
   deterministic), run stage 2 and keep the c with the smallest error;
2. ranks: given the clusters, the squared error of rank r_c in cluster c is
   the sum of its discarded squared singular values, and each extra rank costs
   4 * (n_c + dim) bytes; ranks are bought greedily by error removed per byte
   until the budget is spent (singular values decrease, so within a cluster
   every step is worth less than the one before and the greedy order is the
   fractional-knapsack optimum).

Budget: "4x" (or "4") = the table shrinks 4 times; "0.25" = to a quarter of
its bytes; a whole number >= 1000 = bytes for the compressed tables (shared
among several tables in proportion to their size).
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.mcubert import DOMAIN, META_FIELDS, reconstruct_rows, reconstruct_rows_int8
from onnx2mcu.rewrite import Rewriter, is_standard

if TYPE_CHECKING:
    from onnx2mcu.graph_opt.context import PassContext

MIN_ROWS = 1024  # a table smaller than this is not worth a search
MIN_BYTES = 64 * 1024
CLUSTER_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128)
MIN_ROWS_PER_CLUSTER = 256
KMEANS_ITERATIONS = 12
KMEANS_RESTARTS = 3
F4 = 4


@contextlib.contextmanager
def _one_blas_thread():
    """Run with one OpenBLAS thread: the search makes thousands of small LAPACK calls (eigh
    of dim x dim Gram matrices), which several BLAS threads slow down 10-20x on a busy
    machine.  Uses numpy's bundled OpenBLAS when it can find it, else changes nothing."""
    setter = getter = None
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for stem, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
            if hasattr(lib, f"{stem}_set_num_threads{suffix}"):
                setter = getattr(lib, f"{stem}_set_num_threads{suffix}")
                getter = getattr(lib, f"{stem}_get_num_threads{suffix}")
                break
        if setter is not None:
            break
    if setter is None:
        yield
        return
    previous = int(getter())
    setter(1)
    try:
        yield
    finally:
        setter(previous)


# ----- the budget -----------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    ratio: float | None = None  # compressed = original / ratio
    bytes: int | None = None  # total bytes of all compressed tables

    def per_table(self, table_bytes: int, all_tables_bytes: int) -> int:
        if self.ratio is not None:
            return int(table_bytes / self.ratio)
        return int(self.bytes * table_bytes / all_tables_bytes)

    def describe(self) -> str:
        return f"{self.ratio:g}x" if self.ratio is not None else f"{self.bytes} B"


def parse_budget(spec: str | float | int) -> Budget:
    """'4x' or '4' (ratio), '0.25' (fraction of the original), '500000' (bytes)."""
    text = str(spec).strip().lower()
    hint = ("--compress-embeddings: give a ratio such as 4x, a fraction such as 0.25, or a "
            "number of bytes (>= 1000) such as 500000")
    try:
        if text.endswith("x"):
            value = float(text[:-1])
            if value < 1.0:
                raise ValueError
            return Budget(ratio=value)
        value = float(text)
    except ValueError:
        raise UserError(f"{hint}; got '{spec}'") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{hint}; got '{spec}'")
    if value < 1.0:
        return Budget(ratio=1.0 / value)
    if value < 1000:
        return Budget(ratio=value)
    if value != int(value):
        raise UserError(f"{hint}; got '{spec}'")
    return Budget(bytes=int(value))


def parse_weights_budget(spec: str | int | None, flash_bytes: int | None) -> int | None:
    """--weights-budget: 'board' (the board's flash), or bytes ('1048576', '512K', '2M' with
    K = 1024) for the whole model's flash image (weights + code allowance)."""
    if spec is None:
        return None
    text = str(spec).strip().lower()
    if text == "board":
        if flash_bytes is None:
            raise UserError("--weights-budget board: this board has no flash size (the host); give "
                            "a number of bytes, or a --board")
        return int(flash_bytes)
    scale = 1
    if text[-1:] in ("k", "m"):
        scale, text = (1024 if text[-1] == "k" else 1024 * 1024), text[:-1]
    try:
        value = float(text) * scale
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 1000 or value != int(value):
        raise UserError(f"--weights-budget: give 'board' or the flash bytes for the whole model "
                        f"(>= 1000, e.g. 1048576 or 1024K or 1M); got '{spec}'")
    return int(value)


def flash_image_bytes(graph: Graph) -> int:
    """The model's flash image as --weights-budget counts it: the weights plus the estimate of
    code, kernels' tables, test inputs and the C library (onnx2mcu/budget.py code_allowance)."""
    from onnx2mcu.budget import code_allowance

    return graph.weights_bytes + code_allowance(graph)


# ----- finding lookups ----------------------------------------------------------------
def embedding_lookups(graph: Graph) -> dict[str, list[Node]]:
    """Constant table name -> the Gather nodes that look rows up in it with run-time ids."""
    found: dict[str, list[Node]] = {}
    for node in graph.nodes:
        if node.op_type != "Gather" or not is_standard(node) or len(node.inputs) != 2:
            continue
        table, ids = (graph.tensors[n] for n in node.inputs)
        if not table.is_const or ids.is_const or not (table.dtype is DType.FLOAT32 or _quantized_table(graph, node)):
            continue
        if len(table.shape) != 2 or node.attr("axis", 0) not in (0, -2):
            continue
        if ids.dtype not in (DType.INT64, DType.INT32):
            continue
        if table.shape[0] < MIN_ROWS or table.nbytes < MIN_BYTES:
            continue
        found.setdefault(table.name, []).append(node)
    return found


def _quantized_table(graph: Graph, gather: Node) -> bool:
    """An int8 table quantized per tensor whose rows the Gather passes on with the same
    parameters (a QDQ model's embeddings): compressed from its dequantized values."""
    table, out = graph.tensors[gather.inputs[0]], graph.tensors[gather.outputs[0]]
    return (table.dtype is DType.INT8 and table.quant is not None and table.quant.axis is None
            and out.dtype is DType.INT8 and out.quant == table.quant)


def table_values(tensor) -> np.ndarray:
    """The table's real values (float32): an int8 table dequantized."""
    if tensor.dtype is DType.FLOAT32:
        return np.asarray(tensor.data, dtype=np.float32)
    q = tensor.quant
    real = (np.asarray(tensor.data, dtype=np.float64) - float(np.asarray(q.zero_point))) * float(np.asarray(q.scale))
    return real.astype(np.float32)


# ----- clustering -------------------------------------------------------------------------
def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int | None = None,
           restarts: int | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """Cluster labels (0..k-1, every cluster non-empty): the best of `restarts` runs of
    k-means++ seeding and Lloyd iterations (by the sum of squared distances; with `weights`,
    the weighted sum: weighted seeding and weighted centres, so frequent rows pull)."""
    if k <= 1:
        return np.zeros(x.shape[0], dtype=np.int64)
    iterations = KMEANS_ITERATIONS if iterations is None else iterations
    restarts = KMEANS_RESTARTS if restarts is None else restarts
    best, best_cost = None, np.inf
    for run in range(restarts):
        labels = _kmeans_once(x, k, seed + run, iterations, weights)
        if weights is None:
            cost = sum(float(((rows - rows.mean(axis=0)) ** 2).sum())
                       for rows in cluster_rows(x, labels, k))
        else:
            cost = 0.0
            for ids in cluster_ids(labels, k):
                w = weights[ids]
                mu = (w @ x[ids]) / max(float(w.sum()), 1e-300)
                cost += float(w @ ((x[ids] - mu) ** 2).sum(axis=1))
        if cost < best_cost:
            best, best_cost = labels, cost
    return best


def _kmeans_once(x: np.ndarray, k: int, seed: int, iterations: int,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Distances in float32 (only the argmin matters), centres in float64."""
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    x32 = x.astype(np.float32)
    columns = np.ascontiguousarray(x.T)
    sq = np.einsum("ij,ij->i", x32, x32)
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]

    def dist_to(center: np.ndarray) -> np.ndarray:
        c32 = center.astype(np.float32)
        return np.maximum(sq - 2 * (x32 @ c32) + c32 @ c32, 0.0)

    dist = dist_to(centers[0])
    for j in range(1, k):
        mass = dist if weights is None else dist * weights
        total = float(mass.sum(dtype=np.float64))
        pick = rng.choice(n, p=mass / total) if total > 0 else rng.integers(n)
        centers[j] = x[pick]
        dist = np.minimum(dist, dist_to(centers[j]))
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(iterations):
        c32 = centers.astype(np.float32)
        d = sq[:, None] - 2 * (x32 @ c32.T) + np.einsum("ij,ij->i", c32, c32)[None, :]
        new = np.argmin(d, axis=1)
        counts = np.bincount(new, minlength=k)
        for empty in np.nonzero(counts == 0)[0]:  # reseed an empty cluster with the worst-fit row
            worst = int(np.argmax(d[np.arange(n), new]))
            new[worst] = empty
            d[worst, :] = 0.0
        changed = int(np.count_nonzero(new != labels))
        labels = new
        if changed <= n // 1000:  # (almost) settled
            break
        if weights is None:
            counts = np.bincount(labels, minlength=k)
            sums = np.stack([np.bincount(labels, weights=column, minlength=k) for column in columns],
                            axis=1)
        else:
            counts = np.maximum(np.bincount(labels, weights=weights, minlength=k), 1e-300)
            sums = np.stack([np.bincount(labels, weights=column * weights, minlength=k)
                             for column in columns], axis=1)
        centers = sums / counts[:, None]
    return labels


def cluster_ids(labels: np.ndarray, k: int) -> list[np.ndarray]:
    """The ids of each cluster (ascending within a cluster)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=k))[:-1]
    return np.split(order, bounds)


def cluster_rows(x: np.ndarray, labels: np.ndarray, k: int) -> list[np.ndarray]:
    """The rows of each cluster (ids ascending within a cluster)."""
    return [x[ids] for ids in cluster_ids(labels, k)]


def cluster_fit(rows: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(mean row, the centred rows scaled by sqrt(weight)): the mean and the matrix whose
    truncated SVD minimises the (weighted) squared error sum_t w_t |x_t - mu - a_t P|^2
    (the coefficients a_t are then the plain projections of x_t - mu)."""
    if w is None:
        mu = rows.mean(axis=0)
        return mu, rows - mu
    mu = (w @ rows) / max(float(w.sum()), 1e-300)
    return mu, (rows - mu) * np.sqrt(w)[:, None]


def _spectrum(rows: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean row, squared singular values of the (weighted) centred rows, descending)."""
    mu, centred = cluster_fit(rows, w)
    if centred.shape[0] < centred.shape[1]:
        gram = centred @ centred.T
    else:
        gram = centred.T @ centred
    eig = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    return mu, eig


def top_directions(centred: np.ndarray, rank: int) -> np.ndarray:
    """The `rank` leading right singular vectors [rank, dim] of `centred` (its truncated SVD
    basis), from the eigenvectors of the smaller Gram matrix: much cheaper than an SVD."""
    n, dim = centred.shape
    if rank <= 0:
        return np.zeros((0, dim))
    if n >= dim:
        _, vectors = np.linalg.eigh(centred.T @ centred)
        return vectors[:, ::-1][:, :rank].T.copy()
    values, vectors = np.linalg.eigh(centred @ centred.T)
    values, vectors = values[::-1][:rank], vectors[:, ::-1][:, :rank]
    vt = vectors.T @ centred  # rows: sigma_i * v_i
    keep = values > max(float(values[0]), 0.0) * 1e-12  # null directions stay zero
    vt[keep] /= np.sqrt(values[keep])[:, None]
    vt[~keep] = 0.0
    return vt


def map_bytes_for(vocab: int) -> int:
    return max(1, math.ceil(math.log2(max(vocab, 2)) / 8))


@dataclass(frozen=True)
class Format:
    """How the factors are stored: float32, or int8 with per-cluster scales for the mean row
    and the basis and, for the A rows, one scale per row (`row_scales`) or per cluster."""
    bytes: int = F4
    row_scales: bool = True

    @property
    def int8(self) -> bool:
        return self.bytes == 1

    def scale_bytes(self, vocab: int, clusters: int) -> int:
        if not self.int8:
            return 0
        return F4 * ((vocab if self.row_scales else clusters) + 2 * clusters)


FLOAT32 = Format()
INT8_ROW_SCALES = Format(1, True)
INT8_CLUSTER_SCALES = Format(1, False)


def _fmt(elem: Format | None) -> Format:
    return FLOAT32 if elem is None else elem


@dataclass
class Plan:
    clusters: int
    labels: np.ndarray
    ranks: np.ndarray
    counts: np.ndarray
    bytes: int
    sq_error: float  # predicted squared Frobenius error (frequency-weighted when weights are given)
    exact: int = 0  # the last `exact` clusters are single rows kept exact (their mean row)


def allocate_ranks(counts: np.ndarray, spectra: list[np.ndarray], dim: int, available: int,
                   elem: "Format" = None) -> tuple[np.ndarray, float, int]:
    """Stage 2: ranks per cluster within `available` bytes -> (ranks, squared error, bytes used)."""
    gains, costs, owner = [], [], []
    for c, eig in enumerate(spectra):
        steps = min(len(eig), int(counts[c]), dim)
        gains.append(eig[:steps])
        costs.append(np.full(steps, _fmt(elem).bytes * (int(counts[c]) + dim)))
        owner.append(np.full(steps, c))
    ranks = np.zeros(len(spectra), dtype=np.int64)
    total = float(sum(float(e.sum()) for e in spectra))
    if not gains:
        return ranks, total, 0
    gain, cost, who = (np.concatenate(v) for v in (gains, costs, owner))
    order = np.argsort(-(gain / cost), kind="stable")
    left = available
    removed = 0.0
    blocked = np.zeros(len(spectra), dtype=bool)
    for i in order:
        c = who[i]
        if blocked[c]:
            continue
        if cost[i] > left:
            blocked[c] = True  # every later step of this cluster costs the same and gains less
            continue
        left -= int(cost[i])
        ranks[c] += 1
        removed += float(gain[i])
    return ranks, max(total - removed, 0.0), available - left




def _fit(x: np.ndarray, w: np.ndarray | None, labels: np.ndarray, k: int, dim: int,
         available: int, elem: "Format" = None) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Spectra of the k clusters of `labels` and stage 2 -> (counts, ranks, sq error, bytes)."""
    counts = np.bincount(labels, minlength=k)
    spectra = [_spectrum(x[ids], None if w is None else w[ids])[1] for ids in cluster_ids(labels, k)]
    ranks, sq_error, used = allocate_ranks(counts, spectra, dim, available, elem)
    return counts, ranks, sq_error, used


def _fixed_bytes(vocab: int, clusters: int, dim: int, elem: "Format" = None) -> int:
    """Map (when there is more than one cluster) and, per cluster, meta and mean row; int8
    factors add their scales (ClusteredEmbeddingInt8: two per cluster, and one per row or one
    per cluster for the A rows)."""
    scales = _fmt(elem).scale_bytes(vocab, clusters)
    return (map_bytes_for(vocab) * vocab if clusters > 1 else 0) + \
        clusters * (META_FIELDS * 4 + _fmt(elem).bytes * dim) + scales


def search(table: np.ndarray, budget_bytes: int, seed: int = 0,
           candidates: tuple[int, ...] | None = None,
           weights: np.ndarray | None = None, elem: "Format" = None) -> tuple[Plan, list[dict]]:
    """Both stages: the plan with the smallest reconstruction error within `budget_bytes`.

    With `weights` (one per row, graph_opt/embedding.frequency_weights) the error is
    sum_t w_t |e_t - ê_t|^2: weighted k-means, weighted cluster means and subspaces, and
    then the most frequent rows may be kept exact (`choose_exact`)."""
    candidates = CLUSTER_CANDIDATES if candidates is None else candidates
    vocab, dim = table.shape
    x = table.astype(np.float64)
    row_sq = np.einsum("ij,ij->i", x, x)
    norm_sq = float(row_sq.sum() if weights is None else weights @ row_sq) or 1.0
    best: Plan | None = None
    tried: list[dict] = []
    for k in candidates:
        if k > 1 and vocab // k < MIN_ROWS_PER_CLUSTER:
            break
        fixed = _fixed_bytes(vocab, k, dim, elem)
        if fixed > budget_bytes:
            tried.append({"clusters": k, "fits": False})
            continue
        labels = kmeans(x, k, seed=seed, weights=weights)
        counts, ranks, sq_error, used = _fit(x, weights, labels, k, dim, budget_bytes - fixed, elem)
        plan = Plan(k, labels, ranks, counts, fixed + used, sq_error)
        tried.append({"clusters": k, "fits": True, "bytes": plan.bytes,
                      "predicted_rel_error": round(math.sqrt(sq_error / norm_sq), 6),
                      "mean_rank": round(float((ranks * counts).sum() / vocab), 2)})
        if best is None or sq_error < best.sq_error * (1 - 1e-9):
            best, best_available = plan, budget_bytes - fixed
    if best is not None and best.clusters > 1:
        refined = refine(x, best, best_available, weights=weights, elem=elem)
        if refined is not best:
            tried.append({"clusters": refined.clusters, "fits": True, "refined": True,
                          "bytes": refined.bytes,
                          "predicted_rel_error": round(math.sqrt(refined.sq_error / norm_sq), 6),
                          "mean_rank": round(float((refined.ranks * refined.counts).sum() / vocab), 2)})
            best = refined
    if best is None:
        minimum = _fixed_bytes(vocab, 1, dim, elem)
        raise UserError(f"--compress-embeddings: a budget of {budget_bytes} B cannot hold even the "
                        f"mean row of a {vocab}x{dim} table (needs >= {minimum} B); give a larger "
                        "budget or a smaller ratio")
    if weights is not None:
        best = choose_exact(x, weights, best, budget_bytes, norm_sq, tried, elem)
    return best, tried


EXACT_SHARES = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6)  # shares of the budget tried for exact rows


def choose_exact(x: np.ndarray, w: np.ndarray, plan: Plan, budget_bytes: int, norm_sq: float,
                 tried: list[dict], elem: "Format" = None) -> Plan:
    """Keep the most frequent rows exact (each a one-row cluster: its mean row, no factors,
    META_FIELDS * 4 + 4 * dim bytes) where that lowers the weighted error: for a few shares
    of the budget, take that many of the heaviest rows (those above the floor weight, i.e.
    seen in the statistics) out of the plan's clusters, re-buy the ranks of the rest with
    the bytes left, keep the best (then refine the rest's clusters)."""
    vocab, dim = x.shape
    row_cost = _fixed_bytes(vocab, 2, dim, elem) - _fixed_bytes(vocab, 1, dim, elem) - map_bytes_for(vocab) * vocab
    seen = np.nonzero(w > w.min() * (1 + 1e-9))[0]
    heavy = seen[np.argsort(-w[seen], kind="stable")]
    if heavy.size == 0:
        return plan
    best, best_parts = plan, None
    done: set[int] = set()
    for share in EXACT_SHARES:
        n_exact = min(heavy.size, int(share * budget_bytes // row_cost), vocab - 1)
        if n_exact <= 0 or n_exact in done:
            continue
        done.add(n_exact)
        rest = np.ones(vocab, dtype=bool)
        rest[heavy[:n_exact]] = False
        _, labels = np.unique(plan.labels[rest], return_inverse=True)  # clusters left, renumbered
        k = int(labels.max()) + 1
        fixed = _fixed_bytes(vocab, k + n_exact, dim, elem)
        if fixed > budget_bytes:
            continue
        available = budget_bytes - fixed
        counts, ranks, sq_error, used = _fit(x[rest], w[rest], labels, k, dim, available, elem)
        tried.append({"clusters": k, "exact_rows": n_exact, "fits": True, "bytes": fixed + used,
                      "predicted_rel_error": round(math.sqrt(sq_error / norm_sq), 6)})
        if sq_error < best.sq_error * (1 - 1e-9):
            best = Plan(k, labels, ranks, counts, fixed + used, sq_error)
            best_parts = (rest, n_exact, available)
    if best_parts is None:
        return plan
    rest, n_exact, available = best_parts
    if best.clusters > 1:
        best = refine(x[rest], best, available, weights=w[rest], elem=elem)
        tried.append({"clusters": best.clusters, "exact_rows": n_exact, "fits": True,
                      "refined": True, "bytes": best.bytes + n_exact * row_cost,
                      "predicted_rel_error": round(math.sqrt(best.sq_error / norm_sq), 6)})
    labels = np.empty(vocab, dtype=np.int64)
    labels[rest] = best.labels
    exact_ids = np.nonzero(~rest)[0]
    labels[exact_ids] = best.clusters + np.arange(n_exact)  # ids ascending, after the clusters
    return Plan(best.clusters + n_exact, labels,
                np.concatenate([best.ranks, np.zeros(n_exact, dtype=np.int64)]),
                np.concatenate([best.counts, np.ones(n_exact, dtype=np.int64)]),
                best.bytes, best.sq_error, exact=n_exact)


def refine(x: np.ndarray, plan: Plan, available: int, rounds: int = 3,
           weights: np.ndarray | None = None, elem: "Format" = None) -> Plan:
    """Move each row to the cluster whose mean + rank-r_c subspace rebuilds it best, then
    re-fit the subspaces and re-buy the ranks; kept while the error keeps falling (k-means
    groups rows by position, this by the subspace they lie in).  With `weights` the means
    and subspaces are the weighted ones (a row's own weight does not change where it fits
    best)."""
    n, dim = x.shape
    x32 = x.astype(np.float32)
    sq = np.einsum("ij,ij->i", x32, x32)
    best = plan
    for _ in range(rounds):
        residual = np.empty((n, best.clusters), dtype=np.float32)
        for c, ids in enumerate(cluster_ids(best.labels, best.clusters)):
            rows = x[ids]
            mu, centred = cluster_fit(rows, None if weights is None else weights[ids])
            mu32 = mu.astype(np.float32)
            # |x - mu|^2 - |(x - mu) V^T|^2, without forming x - mu for every row
            base = sq - 2 * (x32 @ mu32) + mu32 @ mu32
            rank = int(best.ranks[c])
            if rank:
                vt = top_directions(centred, rank).astype(np.float32)
                proj = x32 @ vt.T - (mu32 @ vt.T)[None, :]
                base = base - np.einsum("ij,ij->i", proj, proj)
            residual[:, c] = base
        labels = np.argmin(residual, axis=1)
        counts = np.bincount(labels, minlength=best.clusters)
        for empty in np.nonzero(counts == 0)[0]:  # an emptied cluster takes the worst-fit row
            worst = int(np.argmax(residual[np.arange(n), labels]))
            labels[worst] = empty
            residual[worst, :] = -np.inf
        counts = np.bincount(labels, minlength=best.clusters)
        if np.any(counts == 0) or np.array_equal(labels, best.labels):
            break
        fixed = best.bytes - _rank_bytes(best.ranks, best.counts, dim, elem)
        counts, ranks, sq_error, used = _fit(x, weights, labels, best.clusters, dim, available, elem)
        if sq_error >= best.sq_error * (1 - 1e-6):
            break
        best = Plan(best.clusters, labels, ranks, counts, fixed + used, sq_error)
    return best


def _rank_bytes(ranks: np.ndarray, counts: np.ndarray, dim: int, elem: "Format" = None) -> int:
    return int(sum(_fmt(elem).bytes * int(r) * (int(n) + dim) for r, n in zip(ranks, counts)))


@dataclass
class Compressed:
    id_map: np.ndarray | None  # uint8 [vocab * map_bytes] or None
    map_bytes: int
    meta: np.ndarray  # int32 [clusters, 5]
    a: np.ndarray  # float32 1-D
    p: np.ndarray  # float32 1-D
    plan: Plan
    dim: int
    # int8 factors (ClusteredEmbeddingInt8): a and p quantized, their scales; None: float32
    a_q: np.ndarray | None = None
    p_q: np.ndarray | None = None
    scales: np.ndarray | None = None
    row_scales: bool = True  # int8: one scale per A row (else one per cluster)

    @property
    def int8(self) -> bool:
        return self.scales is not None

    @property
    def nbytes(self) -> int:
        head = (0 if self.id_map is None else self.id_map.nbytes) + self.meta.nbytes
        if self.int8:
            return head + self.a_q.nbytes + self.p_q.nbytes + self.scales.nbytes
        return head + self.a.nbytes + self.p.nbytes

    def rows(self, ids: np.ndarray) -> np.ndarray:
        from onnx2mcu.ops.mcubert import embedding_positions

        vocab = self.plan.labels.size
        pos, _ = embedding_positions(ids, self.id_map, self.map_bytes, vocab)
        if self.int8:
            return reconstruct_rows_int8(pos, self.meta, self.a_q, self.p_q, self.scales, self.dim,
                                         self.row_scales)
        return reconstruct_rows(pos, self.meta, self.a, self.p, self.dim)


def _q8(values: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Symmetric int8 of a block: scale max|v| / 127 (float32), round half to even, [-127, 127]."""
    top = float(np.abs(values).max()) if values.size else 0.0
    scale = np.float32(top / 127.0) if top > 0 else np.float32(0.0)
    if scale == 0:
        return np.zeros(values.shape, dtype=np.int8), scale
    q = np.clip(np.rint(values.astype(np.float64) / float(scale)), -127, 127).astype(np.int8)
    return q, scale


def quantize_factors(comp: Compressed, row_scales: bool = True) -> Compressed:
    """The int8 form of `comp` (opt-in, lossy): per cluster one scale for the mean row and one
    for the basis, and one scale per A row (per token) or, without `row_scales`, one for the
    cluster's A block; the layout of onnx2mcu/ops/mcubert.py."""
    vocab, dim = comp.plan.labels.size, comp.dim
    meta = comp.meta.astype(np.int64)
    clusters = meta.shape[0]
    a_q = np.zeros(comp.a.size, dtype=np.int8)
    p_q = np.zeros(comp.p.size, dtype=np.int8)
    scales = np.zeros(2 * clusters + (vocab if row_scales else clusters), dtype=np.float32)
    for c, (start, count, rank, a_off, p_off) in enumerate(meta):
        p_q[p_off:p_off + dim], scales[2 * c + 1] = _q8(comp.p[p_off:p_off + dim])
        if rank == 0:
            continue
        basis = comp.p[p_off + dim: p_off + dim + rank * dim]
        p_q[p_off + dim: p_off + dim + rank * dim], scales[2 * c] = _q8(basis)
        block = comp.a[a_off: a_off + count * rank].reshape(count, rank)
        if not row_scales:
            a_q[a_off: a_off + count * rank], scales[2 * clusters + c] = _q8(block.reshape(-1))
            continue
        top = np.abs(block).max(axis=1).astype(np.float64)
        row_scale = np.where(top > 0, top / 127.0, 0.0).astype(np.float32)
        safe = np.where(row_scale > 0, row_scale, 1.0).astype(np.float64)
        q = np.clip(np.rint(block.astype(np.float64) / safe[:, None]), -127, 127).astype(np.int8)
        a_q[a_off: a_off + count * rank] = q.reshape(-1)
        scales[2 * clusters + start: 2 * clusters + start + count] = row_scale
    return Compressed(comp.id_map, comp.map_bytes, comp.meta, comp.a, comp.p, comp.plan, dim,
                      a_q, p_q, scales, row_scales)


def build(table: np.ndarray, plan: Plan, weights: np.ndarray | None = None) -> Compressed:
    """The factors of `plan`: cluster order, id map, meta, A and P blobs (a one-row cluster
    stores the row itself as its mean: exact)."""
    vocab, dim = table.shape
    x = table.astype(np.float64)
    order = np.argsort(plan.labels, kind="stable")  # ids in cluster order
    starts = np.concatenate([[0], np.cumsum(plan.counts)[:-1]])
    meta = np.zeros((plan.clusters, META_FIELDS), dtype=np.int32)
    a_parts, p_parts = [], []
    a_off = p_off = 0
    for c in range(plan.clusters):
        ids = order[starts[c]: starts[c] + plan.counts[c]]
        rows = x[ids]
        if len(ids) == 1:
            mu, centred = rows[0], np.zeros_like(rows)
        else:
            mu, centred = cluster_fit(rows, None if weights is None else weights[ids])
        rank = int(plan.ranks[c])
        p_parts.append(mu.astype(np.float32))
        if rank:
            vt = top_directions(centred, rank)
            a_parts.append(((rows - mu) @ vt.T).astype(np.float32).reshape(-1))
            p_parts.append(vt.astype(np.float32).reshape(-1))
        meta[c] = (starts[c], plan.counts[c], rank, a_off, p_off)
        a_off += int(plan.counts[c]) * rank
        p_off += dim * (1 + rank)
    a = np.concatenate(a_parts) if a_parts else np.zeros(1, dtype=np.float32)
    p = np.concatenate(p_parts).astype(np.float32)
    id_map, map_bytes = None, 0
    if plan.clusters > 1:
        map_bytes = map_bytes_for(vocab)
        position = np.empty(vocab, dtype=np.int64)
        position[order] = np.arange(vocab)
        id_map = np.stack([(position >> (8 * b)) & 0xFF for b in range(map_bytes)], axis=1)
        id_map = id_map.astype(np.uint8).reshape(-1)
    return Compressed(id_map, map_bytes, meta, a, p, plan, dim)


# ----- token statistics ------------------------------------------------------------------------
UNSEEN_SHARE = 0.3  # share of the weight spread evenly over all rows (tokens the statistics miss)


def frequency_weights(counts: np.ndarray, vocab: int, unseen_share: float | None = None) -> np.ndarray:
    """Row weights from token counts: (1 - u) * count / total + u / vocab, so the weights sum
    to 1, a token's weight follows its frequency, and a token never seen keeps a floor (the
    statistics are a sample; u = UNSEEN_SHARE)."""
    u = UNSEEN_SHARE if unseen_share is None else unseen_share
    c = np.zeros(vocab, dtype=np.float64)
    c[:min(vocab, counts.size)] = np.asarray(counts, dtype=np.float64)[:vocab]
    total = float(c.sum())
    if total <= 0:
        return np.full(vocab, 1.0 / vocab)
    return (1.0 - u) * c / total + u / vocab


def compress_table(table: np.ndarray, budget_bytes: int, seed: int = 0,
                   counts: np.ndarray | None = None, int8: bool = False) -> tuple[Compressed, dict]:
    """Search + build; the report has the measured (float32) relative Frobenius error and,
    with token `counts`, the frequency-weighted one (the objective then).  `int8`: the
    search prices factors at one byte (+ their scales) and the factors are quantized; both
    scale layouts of the A rows (per row, per cluster) are tried and the one with the
    smaller measured (weighted) error is kept (per-row scales cost 4 B a token, which a
    tight budget cannot afford)."""
    start = time.perf_counter()
    vocab, dim = table.shape
    weights = None if counts is None else frequency_weights(counts, vocab)
    t64 = table.astype(np.float64)
    row_sq = (t64 ** 2).sum(axis=1)
    best, error = None, None
    with _one_blas_thread():
        for fmt in ((INT8_ROW_SCALES, INT8_CLUSTER_SCALES) if int8 else (FLOAT32,)):
            try:
                plan, tried = search(table, budget_bytes, seed=seed, weights=weights, elem=fmt)
            except UserError as exc:  # too small a budget for this layout
                error = exc
                continue
            result = build(table, plan, weights)
            if fmt.int8:
                result = quantize_factors(result, fmt.row_scales)
            rows = result.rows(np.arange(vocab))
            diff_sq = ((rows.astype(np.float64) - t64) ** 2).sum(axis=1)
            score = float(diff_sq.sum() if weights is None else weights @ diff_sq)
            if best is None or score < best[0]:
                best = (score, plan, tried, result, diff_sq)
    if best is None:
        raise error
    _, plan, tried, result, diff_sq = best
    err = math.sqrt(float(diff_sq.sum())) / max(math.sqrt(float(row_sq.sum())), 1e-30)
    counts_ = plan.counts
    info = {"shape": [vocab, dim], "bytes_before": int(table.nbytes), "bytes_after": result.nbytes,
            "budget_bytes": int(budget_bytes), "ratio": round(table.nbytes / result.nbytes, 4),
            "rel_error": round(err, 6), "clusters": plan.clusters - plan.exact,
            "map_bytes": result.map_bytes,
            "rank_min": int(plan.ranks.min()), "rank_max": int(plan.ranks.max()),
            "rank_mean": round(float((plan.ranks * counts_).sum() / vocab), 3),
            "objective": "uniform" if weights is None else "frequency-weighted",
            "factors": ("int8" + (" (row scales)" if result.row_scales else " (cluster scales)"))
            if result.int8 else "float32",
            "search": tried, "seconds": round(time.perf_counter() - start, 3)}
    if weights is not None:
        info["weighted_rel_error"] = round(math.sqrt(float(weights @ diff_sq) /
                                                     max(float(weights @ row_sq), 1e-300)), 6)
        exact = plan.labels >= plan.clusters - plan.exact
        c = np.asarray(counts, dtype=np.float64)[:vocab]
        info["exact_rows"] = int(plan.exact)
        info["exact_share"] = round(float(c[exact[:c.size]].sum() / max(c.sum(), 1e-300)), 4)
        info["tokens_counted"] = int(c.sum())
        info["distinct_tokens"] = int(np.count_nonzero(c))
    return result, info


def load_token_frequencies(path: str) -> np.ndarray:
    """Counts per token id from `path`: a .npy array (one count per id), or a text file with
    one count per line (line i = id i) or "id count" lines ('#' starts a comment)."""
    flag = "--token-frequencies"
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path}: no such file")
    if path.endswith(".npy"):
        try:
            counts = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"{flag} {path}: not a numpy .npy array ({str(exc).splitlines()[0]})") from None
        if counts.ndim != 1 or counts.dtype.kind not in "iuf":
            raise UserError(f"{flag} {path}: expected a 1-D array of counts, got {counts.dtype} "
                            f"{list(counts.shape)}")
        counts = counts.astype(np.float64)
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{flag} {path}: cannot read it as text ({exc})") from None
        pairs, single = {}, []
        for number, line in enumerate(lines, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            try:
                values = [float(f) for f in fields]
            except ValueError:
                raise UserError(f"{flag} {path}:{number}: expected 'count' or 'id count', got "
                                f"'{line.strip()[:60]}'") from None
            if len(values) == 1:
                single.append(values[0])
            elif len(values) == 2 and values[0] == int(values[0]) and values[0] >= 0:
                pairs[int(values[0])] = pairs.get(int(values[0]), 0.0) + values[1]
            else:
                raise UserError(f"{flag} {path}:{number}: expected 'count' or 'id count', got "
                                f"'{line.strip()[:60]}'")
            if single and pairs:
                raise UserError(f"{flag} {path}:{number}: mixes 'count' and 'id count' lines")
        if pairs:
            counts = np.zeros(max(pairs) + 1)
            for i, c in pairs.items():
                counts[i] = c
        else:
            counts = np.asarray(single, dtype=np.float64)
    if counts.size == 0 or not np.all(np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0:
        raise UserError(f"{flag} {path}: counts must be finite, >= 0 and not all zero")
    return counts


def count_calibration_text(text_path: str, tokenizer_path: str | None) -> np.ndarray:
    """Counts per token id of a text file (one sentence or passage per line), tokenized as the
    model's tokenizer does (with its special tokens, as at inference): transformers'
    AutoTokenizer from a local folder."""
    if tokenizer_path is None:
        raise UserError("--calibration-text needs --tokenizer PATH (the model's tokenizer folder)")
    if not os.path.isfile(text_path):
        raise UserError(f"--calibration-text {text_path}: no such file")
    try:
        with open(text_path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--calibration-text {text_path}: cannot read it as UTF-8 text ({exc})") from None
    if not lines:
        raise UserError(f"--calibration-text {text_path}: the file has no text")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UserError("--calibration-text needs transformers (pip install 'onnx2mcu[export]'), "
                        "or count the tokens yourself and give --token-frequencies") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds (OSError, ValueError, ...)
        raise UserError(f"--tokenizer {tokenizer_path}: cannot load a tokenizer "
                        f"({str(exc).splitlines()[0][:120]})") from None
    ids = [i for line in lines for i in tokenizer(line)["input_ids"]]
    return np.bincount(np.asarray(ids, dtype=np.int64)).astype(np.float64)


def token_counts(options) -> tuple[np.ndarray | None, str | None]:
    """The token statistics asked for (--token-frequencies, or --calibration-text with
    --tokenizer; both: summed) and a description, or (None, None)."""
    freq = getattr(options, "token_frequencies", None)
    text = getattr(options, "calibration_text", None)
    tokenizer = getattr(options, "tokenizer", None)
    if tokenizer is not None and text is None:
        raise UserError("--tokenizer is used with --calibration-text FILE")
    parts, what = [], []
    if freq is not None:
        parts.append(load_token_frequencies(str(freq)))
        what.append(f"token frequencies {os.path.basename(str(freq))}")
    if text is not None:
        parts.append(count_calibration_text(str(text), None if tokenizer is None else str(tokenizer)))
        what.append(f"calibration text {os.path.basename(str(text))}")
    if not parts:
        return None, None
    counts = np.zeros(max(p.size for p in parts))
    for p in parts:
        counts[:p.size] += p
    return counts, " + ".join(what)


# ----- the pass -------------------------------------------------------------------------------
def compress_embeddings(graph: Graph, ctx: PassContext) -> dict | None:
    """The graph_opt pass: replace embedding Gathers by ClusteredEmbedding within the budget."""
    spec = ctx.options.compress_embeddings
    image_budget = getattr(ctx.options, "weights_budget", None)
    if spec is not None and str(spec).strip().lower() in ("", "none", "off"):
        spec = None
    if image_budget is not None:
        if spec is not None:
            raise UserError("--weights-budget and --compress-embeddings: give one (the first sets "
                            "the whole model's flash, the second the tables' ratio)")
        return _compress_to_fit(graph, ctx, int(image_budget))
    if spec is None:
        found = embedding_lookups(graph)
        table_bytes = sum(graph.tensors[t].nbytes for t in found)
        ctx.report.skip(f"not asked; {len(found)} embedding table(s), {table_bytes / 2 ** 20:.2f} MiB, could be "
                        "(--compress-embeddings RATIO|BYTES, lossy)" if found else
                        "not asked, and no embedding lookup found")
        return None
    return _compress(graph, ctx, parse_budget(spec))


def _compress_to_fit(graph: Graph, ctx: PassContext, image_budget: int) -> dict | None:
    """--weights-budget: the tables' bytes that make the flash image fit, split over the tables
    in proportion to their size (each table then gets its own ratio); the report gives the
    tables' ratio and the whole model's."""
    lookups = embedding_lookups(graph)
    image = flash_image_bytes(graph)
    table_bytes = sum(graph.tensors[t].nbytes for t in lookups)
    base = {"weights_budget": image_budget, "flash_image_before": image}
    if image <= image_budget:
        ctx.report.skip(f"the flash image (~{image} B) already fits --weights-budget {image_budget} B",
                        "embedding_compression")
        return None
    if not lookups:
        raise UserError(f"--weights-budget {image_budget} B: the model needs ~{image} B of flash "
                        "and has no embedding table to compress")
    other = image - table_bytes
    room = image_budget - other
    if room < 1000:
        raise UserError(f"--weights-budget {image_budget} B: the model needs ~{other} B of flash "
                        f"besides its embedding tables ({table_bytes} B), so no compression of "
                        "the tables makes it fit")
    report = _compress(graph, ctx, Budget(bytes=room))
    after = flash_image_bytes(graph)
    report.update(base, fits=after <= image_budget)
    ctx.report.note(f"--weights-budget {image_budget} B: embedding tables compressed "
                    f"{report['ratio']:.2f}x ({table_bytes} -> {report['bytes_after']} B), flash image "
                    f"~{image} -> ~{after} B ({report['whole_model_ratio']:.2f}x smaller)")
    return report


def _compress(graph: Graph, ctx: PassContext, budget: Budget) -> dict:
    lookups = embedding_lookups(graph)
    if not lookups:
        ctx.report.skip("no embedding lookup (Gather of a constant table with run-time ids) found",
                        "embedding_compression")
        return {"tables": [], "ratio": 1.0, "rel_error": 0.0,
                "note": "no embedding lookup (Gather of a constant table with run-time ids) found"}
    counts, counts_from = token_counts(ctx.options)
    int8 = bool(getattr(ctx.options, "embedding_int8", False))
    if counts is not None and not any(graph.tensors[t].shape[0] >= counts.size for t in lookups):
        rows = ", ".join(str(graph.tensors[t].shape[0]) for t in lookups)
        raise UserError(f"{counts_from}: counts for {counts.size} token ids, but the embedding "
                        f"table(s) have {rows} rows")
    ed = Rewriter(graph, ctx.names)
    weights_before = graph.weights_bytes
    image_before = flash_image_bytes(graph)
    all_bytes = sum(graph.tensors[t].nbytes for t in lookups)
    tables = []
    sq_err = sq_norm = 0.0
    before = after = 0
    for table_name, gathers in lookups.items():
        tensor = graph.tensors[table_name]
        data = table_values(tensor)
        table_counts = counts if counts is not None and data.shape[0] >= counts.size else None
        result, info = compress_table(data, budget.per_table(tensor.nbytes, all_bytes),
                                      counts=table_counts, int8=int8)
        base = table_name.replace("/", "_")
        names = {}
        factors = ((("a", result.a_q, DType.INT8), ("p", result.p_q, DType.INT8),
                    ("scales", result.scales, DType.FLOAT32)) if int8 else
                   (("a", result.a, DType.FLOAT32), ("p", result.p, DType.FLOAT32)))
        for key, value, dtype in (("id_map", result.id_map, DType.UINT8),
                                  ("meta", result.meta, DType.INT32), *factors):
            if value is None:
                names[key] = ""
                continue
            names[key] = ed.add_const(f"{base}.clustered.{key}", value, dtype)
        for gather in gathers:
            out = gather.outputs[0]
            quantized = graph.tensors[out].dtype is DType.INT8
            rows = ed.add_tensor(f"{out}_float", graph.tensors[out].shape, DType.FLOAT32) if quantized else out
            new = [ed.new_node(
                f"{gather.name}/clustered", "ClusteredEmbeddingInt8" if int8 else "ClusteredEmbedding",
                [gather.inputs[1], names["id_map"], names["meta"], names["a"], names["p"]]
                + ([names["scales"]] if int8 else []),
                [rows], {"vocab": int(data.shape[0]), "dim": int(data.shape[1]),
                         "map_bytes": result.map_bytes,
                         **({"row_scales": int(result.row_scales)} if int8 else {})},
                DOMAIN)]
            if quantized:  # the rows the model's int8 table held, from the compressed table
                q = graph.tensors[out].quant
                scale = ed.add_const(f"{base}.clustered.scale", np.asarray(q.scale, np.float32).reshape(()))
                zero = ed.add_const(f"{base}.clustered.zero_point", np.asarray(q.zero_point, np.int8).reshape(()))
                new.append(ed.new_node(f"{gather.name}/quantize", "QuantizeLinear", [rows, scale, zero], [out]))
            ed.replace(gather, new)
        if not ed.consumers(table_name) and table_name not in graph.outputs:
            del graph.tensors[table_name]
        info["name"] = table_name
        info["lookups"] = [g.name for g in gathers]
        tables.append(info)
        table64 = data.astype(np.float64)
        sq_norm += float((table64 ** 2).sum())
        sq_err += (info["rel_error"] ** 2) * float((table64 ** 2).sum())
        before += tensor.nbytes
        after += info["bytes_after"]
    weights_after = graph.weights_bytes
    extra = {}
    if counts is not None:
        extra = {"objective": "frequency-weighted", "statistics": counts_from,
                 "weighted_rel_error": max(t.get("weighted_rel_error", 0.0) for t in tables),
                 "exact_rows": sum(t.get("exact_rows", 0) for t in tables)}
        ctx.report.note(f"embedding compression weighted by {counts_from}: weighted table error "
                        f"{extra['weighted_rel_error']:.4f}, {extra['exact_rows']} frequent rows kept exact")
    if int8:
        extra["factors"] = "int8"
        ctx.report.note("embedding factors quantized to int8 (--embeddings-int8: lossy, changes results)")
    return {**extra, "budget": budget.describe(), "ratio": round(before / after, 4),
            "rel_error": round(math.sqrt(sq_err / sq_norm), 6) if sq_norm else 0.0,
            "bytes_before": before, "bytes_after": after,
            "weights_bytes_before": weights_before, "weights_bytes_after": weights_after,
            "weights_ratio": round(weights_before / max(weights_after, 1), 4),
            "table_ratio": round(before / after, 4), "flash_image_before": image_before,
            "flash_image_after": flash_image_bytes(graph),
            "whole_model_ratio": round(image_before / max(flash_image_bytes(graph), 1), 4),
            "tables": tables}
