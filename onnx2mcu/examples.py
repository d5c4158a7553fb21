"""Built-in example models, made with onnx.helper and seeded numpy weights.

`onnx2mcu simulate --example cnn` (the `make demo` model) and friends need
no file, no network and no torch.  Every example is deterministic: the same
name gives the same bytes.  Weights are random but scaled the way the real
networks are initialised, so activations stay finite and meaningful.

    from onnx2mcu.examples import EXAMPLES, build_example
    model = build_example("bert-tiny")          # onnx.ModelProto, opset 17
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.errors import UserError

OPSET = 17

EXAMPLES: dict[str, str] = {
    "bert-tiny": "BERT-tiny encoder (2 layers, hidden 128, 2 heads, FFN 512, vocab 30522), "
                 "sequence 128, as Hugging Face BertModel",
    "cnn": "small CIFAR-10 ResNet-like CNN (3x32x32): residual blocks, stride-2 projection, "
           "depthwise-separable block, softmax",
    "dscnn": "keyword-spotting DS-CNN (1x49x10 MFCC): conv stem and 4 depthwise-separable blocks",
}


def build_example(name: str) -> onnx.ModelProto:
    """The example model called `name` (see EXAMPLES)."""
    builders: dict[str, Callable[[], onnx.ModelProto]] = {
        "bert-tiny": build_bert_tiny,
        "cnn": build_cnn,
        "dscnn": build_dscnn,
    }
    if name not in builders:
        raise UserError(f"unknown example '{name}'; choose one of {', '.join(sorted(EXAMPLES))}")
    return builders[name]()


class _Builder:
    """Collects nodes and initializers with unique, readable names."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count: dict[str, int] = {}

    def unique(self, base: str) -> str:
        n = self._count.get(base, 0)
        self._count[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def const(self, name: str, value) -> str:
        name = self.unique(name)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def normal(self, name: str, shape, std: float) -> str:
        return self.const(name, (self.rng.standard_normal(shape) * std).astype(np.float32))

    def op(self, op_type: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> str | list[str]:
        name = self.unique(name)
        outputs = [name] if n_out == 1 else [f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0] if n_out == 1 else outputs

    def model(self, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=self.inits,
                                  doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="onnx2mcu.examples", ir_version=8)
        onnx.checker.check_model(model)
        return model


# ----- BERT-tiny -------------------------------------------------------------
BERT_TINY = dict(vocab=30522, hidden=128, layers=2, heads=2, ffn=512, max_positions=512,
                 type_vocab=2, seq=128, eps=1e-12)


def bert_tiny_weights(seed: int = 0, **config) -> dict[str, np.ndarray]:
    """Weights named and laid out as in Hugging Face BertModel's state_dict.

    Linear weights are [out, in]; initialised like BERT (normal, std 0.02),
    with small random biases and LayerNorm parameters so that every
    parameter matters in a comparison.  `tests/test_bert.py` loads these
    into transformers' BertModel and checks the example against it.
    """
    cfg = {**BERT_TINY, **config}
    rng = np.random.default_rng(seed)
    H, F = cfg["hidden"], cfg["ffn"]

    def normal(*shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def ln(prefix: str, out: dict) -> None:
        out[f"{prefix}.weight"] = (1.0 + normal(H, std=0.05)).astype(np.float32)
        out[f"{prefix}.bias"] = normal(H)

    w: dict[str, np.ndarray] = {}
    w["embeddings.word_embeddings.weight"] = normal(cfg["vocab"], H)
    w["embeddings.word_embeddings.weight"][0] = 0.0  # padding_idx 0, as HF initialises it
    w["embeddings.position_embeddings.weight"] = normal(cfg["max_positions"], H)
    w["embeddings.token_type_embeddings.weight"] = normal(cfg["type_vocab"], H)
    ln("embeddings.LayerNorm", w)
    for layer in range(cfg["layers"]):
        p = f"encoder.layer.{layer}"
        for part in ("query", "key", "value"):
            w[f"{p}.attention.self.{part}.weight"] = normal(H, H)
            w[f"{p}.attention.self.{part}.bias"] = normal(H)
        w[f"{p}.attention.output.dense.weight"] = normal(H, H)
        w[f"{p}.attention.output.dense.bias"] = normal(H)
        ln(f"{p}.attention.output.LayerNorm", w)
        w[f"{p}.intermediate.dense.weight"] = normal(F, H)
        w[f"{p}.intermediate.dense.bias"] = normal(F)
        w[f"{p}.output.dense.weight"] = normal(H, F)
        w[f"{p}.output.dense.bias"] = normal(H)
        ln(f"{p}.output.LayerNorm", w)
    w["pooler.dense.weight"] = normal(H, H)
    w["pooler.dense.bias"] = normal(H)
    return w


def build_bert_tiny(seed: int = 0, **config) -> onnx.ModelProto:
    """BERT encoder + pooler, computing what HF BertModel(input_ids, attention_mask) does."""
    cfg = {**BERT_TINY, **config}
    H, heads, S = cfg["hidden"], cfg["heads"], cfg["seq"]
    dh = H // heads
    w = bert_tiny_weights(seed, **config)
    b = _Builder("bert-tiny", seed)

    def param(name: str, transpose: bool = False) -> str:
        value = w[name].T.copy() if transpose else w[name]
        return b.const(name, value)

    def linear(x: str, prefix: str, label: str) -> str:
        y = b.op("MatMul", [x, param(f"{prefix}.weight", transpose=True)], f"{label}/MatMul")
        return b.op("Add", [y, param(f"{prefix}.bias")], f"{label}/Add")

    def layer_norm(x: str, prefix: str, label: str) -> str:
        return b.op("LayerNormalization", [x, param(f"{prefix}.weight"), param(f"{prefix}.bias")],
                    f"{label}/LayerNorm", axis=-1, epsilon=cfg["eps"])

    # embeddings: word + token type (all 0) + position (0..S-1), then LayerNorm
    words = b.op("Gather", [param("embeddings.word_embeddings.weight"), "input_ids"],
                 "embeddings/word_embeddings", axis=0)
    token_types = b.const("token_type_ids", np.zeros((1, S), dtype=np.int64))
    types = b.op("Gather", [param("embeddings.token_type_embeddings.weight"), token_types],
                 "embeddings/token_type_embeddings", axis=0)
    positions = b.const("position_ids", np.arange(S, dtype=np.int64)[None, :])
    pos = b.op("Gather", [param("embeddings.position_embeddings.weight"), positions],
               "embeddings/position_embeddings", axis=0)
    x = b.op("Add", [words, types], "embeddings/add_token_types")
    x = b.op("Add", [x, pos], "embeddings/add_positions")
    x = layer_norm(x, "embeddings.LayerNorm", "embeddings")

    # additive mask: (1 - mask) * most negative float, broadcast over heads and query rows
    mask = b.op("Cast", ["attention_mask"], "mask/cast", to=TensorProto.FLOAT)
    one = b.const("one", np.float32(1.0))
    mask = b.op("Sub", [one, mask], "mask/invert")
    mask = b.op("Mul", [mask, b.const("mask_min", np.float32(np.finfo(np.float32).min))], "mask/scale")
    mask = b.op("Reshape", [mask, b.const("mask_shape", np.array([1, 1, 1, S], dtype=np.int64))],
                "mask/reshape")

    heads_shape = b.const("heads_shape", np.array([1, S, heads, dh], dtype=np.int64))
    merged_shape = b.const("merged_shape", np.array([1, S, H], dtype=np.int64))
    scale = b.const("score_scale", np.float32(1.0 / math.sqrt(dh)))
    half = b.const("half", np.float32(0.5))
    sqrt2 = b.const("sqrt2", np.float32(math.sqrt(2.0)))
    for layer in range(cfg["layers"]):
        p, L = f"encoder.layer.{layer}", f"layer{layer}"
        q = linear(x, f"{p}.attention.self.query", f"{L}/query")
        k = linear(x, f"{p}.attention.self.key", f"{L}/key")
        v = linear(x, f"{p}.attention.self.value", f"{L}/value")
        q = b.op("Transpose", [b.op("Reshape", [q, heads_shape], f"{L}/query/split_heads")],
                 f"{L}/query/transpose", perm=[0, 2, 1, 3])  # [1, heads, S, dh]
        k = b.op("Transpose", [b.op("Reshape", [k, heads_shape], f"{L}/key/split_heads")],
                 f"{L}/key/transpose", perm=[0, 2, 3, 1])  # [1, heads, dh, S]
        v = b.op("Transpose", [b.op("Reshape", [v, heads_shape], f"{L}/value/split_heads")],
                 f"{L}/value/transpose", perm=[0, 2, 1, 3])  # [1, heads, S, dh]
        scores = b.op("MatMul", [q, k], f"{L}/scores")
        scores = b.op("Mul", [scores, scale], f"{L}/scores/scale")
        scores = b.op("Add", [scores, mask], f"{L}/scores/mask")
        probs = b.op("Softmax", [scores], f"{L}/softmax", axis=-1)
        context = b.op("MatMul", [probs, v], f"{L}/context")
        context = b.op("Transpose", [context], f"{L}/context/transpose", perm=[0, 2, 1, 3])
        context = b.op("Reshape", [context, merged_shape], f"{L}/context/merge_heads")
        attn = linear(context, f"{p}.attention.output.dense", f"{L}/attention_output")
        attn = b.op("Add", [attn, x], f"{L}/attention_output/residual")
        x = layer_norm(attn, f"{p}.attention.output.LayerNorm", f"{L}/attention_output")
        # FFN with exact (erf) GELU: x * 0.5 * (1 + erf(x / sqrt 2))
        hidden = linear(x, f"{p}.intermediate.dense", f"{L}/intermediate")
        erf = b.op("Erf", [b.op("Div", [hidden, sqrt2], f"{L}/gelu/div")], f"{L}/gelu/erf")
        erf = b.op("Add", [erf, one], f"{L}/gelu/add")
        gelu = b.op("Mul", [b.op("Mul", [hidden, erf], f"{L}/gelu/mul"), half], f"{L}/gelu/half")
        out = linear(gelu, f"{p}.output.dense", f"{L}/output")
        out = b.op("Add", [out, x], f"{L}/output/residual")
        x = layer_norm(out, f"{p}.output.LayerNorm", f"{L}/output")
    last = b.op("Identity", [x], "last_hidden_state")
    # pooler: Dense + Tanh on the first token
    first = b.op("Gather", [last, b.const("first_token", np.array(0, dtype=np.int64))],
                 "pooler/first_token", axis=1)
    pooled = b.op("Gemm", [first, param("pooler.dense.weight"), param("pooler.dense.bias")],
                  "pooler/dense", transB=1)
    b.op("Tanh", [pooled], "pooler_output")
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, S]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, S])]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, S, H]),
               helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, [1, H])]
    return b.model(inputs, outputs, EXAMPLES["bert-tiny"])


# ----- CNNs ------------------------------------------------------------------
def _conv_bn(b: _Builder, x: str, c_in: int, c_out: int, k: int | tuple[int, int], label: str,
             stride: int = 1, group: int = 1, pads=None, relu: bool = True) -> str:
    """Conv (He init, no bias) + BatchNormalization (+ Relu)."""
    kh, kw = (k, k) if isinstance(k, int) else k
    if pads is None:
        pads = [kh // 2, kw // 2, kh // 2, kw // 2]
    fan_in = (c_in // group) * kh * kw
    weight = b.normal(f"{label}.weight", (c_out, c_in // group, kh, kw), math.sqrt(2.0 / fan_in))
    y = b.op("Conv", [x, weight], f"{label}/Conv", kernel_shape=[kh, kw], strides=[stride, stride],
             pads=list(pads), group=group)
    gamma = b.const(f"{label}.bn.weight", (1.0 + 0.1 * b.rng.standard_normal(c_out)).astype(np.float32))
    beta = b.const(f"{label}.bn.bias", (0.1 * b.rng.standard_normal(c_out)).astype(np.float32))
    mean = b.const(f"{label}.bn.running_mean", (0.1 * b.rng.standard_normal(c_out)).astype(np.float32))
    var = b.const(f"{label}.bn.running_var", b.rng.uniform(0.5, 1.5, c_out).astype(np.float32))
    y = b.op("BatchNormalization", [y, gamma, beta, mean, var], f"{label}/BatchNorm", epsilon=1e-5)
    return b.op("Relu", [y], f"{label}/Relu") if relu else y


def _classifier(b: _Builder, x: str, channels: int, classes: int, label: str = "classifier") -> str:
    x = b.op("GlobalAveragePool", [x], "global_avg_pool")
    x = b.op("Flatten", [x], "flatten", axis=1)
    weight = b.normal(f"{label}.weight", (classes, channels), math.sqrt(1.0 / channels))
    bias = b.const(f"{label}.bias", (0.01 * b.rng.standard_normal(classes)).astype(np.float32))
    x = b.op("Gemm", [x, weight, bias], f"{label}/Gemm", transB=1)
    return b.op("Softmax", [x], "probabilities", axis=-1)


def build_cnn(seed: int = 0) -> onnx.ModelProto:
    """CIFAR-10 shaped: stem 16ch @32x32, residual 16, residual 32 @16x16 (stride 2, 1x1
    projection skip), depthwise-separable to 64ch @8x8, global pool, dense, softmax."""
    b = _Builder("cnn", seed)
    x = _conv_bn(b, "input", 3, 16, 3, "stem")
    # residual block, identity skip
    y = _conv_bn(b, x, 16, 16, 3, "block1/conv1")
    y = _conv_bn(b, y, 16, 16, 3, "block1/conv2", relu=False)
    x = b.op("Relu", [b.op("Add", [y, x], "block1/add")], "block1/relu")
    # downsampling residual block, 1x1 stride-2 projection skip
    y = _conv_bn(b, x, 16, 32, 3, "block2/conv1", stride=2)
    y = _conv_bn(b, y, 32, 32, 3, "block2/conv2", relu=False)
    skip = _conv_bn(b, x, 16, 32, 1, "block2/projection", stride=2, relu=False)
    x = b.op("Relu", [b.op("Add", [y, skip], "block2/add")], "block2/relu")
    # depthwise-separable block, stride 2
    x = _conv_bn(b, x, 32, 32, 3, "block3/depthwise", stride=2, group=32)
    x = _conv_bn(b, x, 32, 64, 1, "block3/pointwise")
    _classifier(b, x, 64, 10)
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])]
    return b.model(inputs, outputs, EXAMPLES["cnn"])


def build_dscnn(seed: int = 0) -> onnx.ModelProto:
    """MLPerf-Tiny-like KWS DS-CNN: 10x4 stride-2 conv to 64ch @25x5, four DW/PW blocks, 12 classes."""
    b = _Builder("dscnn", seed)
    # 'same' padding for a 10x4 kernel, stride 2 on 49x10 -> 25x5
    x = _conv_bn(b, "input", 1, 64, (10, 4), "stem", stride=2, pads=[4, 1, 5, 1])
    for i in range(4):
        x = _conv_bn(b, x, 64, 64, 3, f"block{i + 1}/depthwise", group=64)
        x = _conv_bn(b, x, 64, 64, 1, f"block{i + 1}/pointwise")
    _classifier(b, x, 64, 12)
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 49, 10])]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 12])]
    return b.model(inputs, outputs, EXAMPLES["dscnn"])
