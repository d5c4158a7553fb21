"""Exporting a small Hugging Face BERT to ONNX for the tests (needs torch + transformers).

Random weights are enough for compiler checks: the model is built from its
config, never downloaded.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

BERT_TINY = dict(vocab_size=30522, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=512)
SEQ = 128
INPUT_SHAPES = {"input_ids": [1, SEQ], "attention_mask": [1, SEQ]}


def bert_model(seed: int = 0, **config):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    model = BertModel(BertConfig(**{**BERT_TINY, **config}))
    model.eval()
    return model


def bert_inputs(seq: int = SEQ, batch: int = 1, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, BERT_TINY["vocab_size"], (batch, seq), generator=gen, dtype=torch.int64)
    mask = torch.ones((batch, seq), dtype=torch.int64)
    return ids, mask


def _wrapped(model):
    """BertModel with a plain (input_ids, attention_mask) -> (hidden, pooled) forward."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = model

        def forward(self, input_ids, attention_mask):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            return out.last_hidden_state, out.pooler_output

    return Wrapper().eval()


def export_bert(path: str | Path, dynamo: bool, seed: int = 0) -> Path:
    """Write BERT-tiny as ONNX with the legacy TorchScript exporter or the dynamo one."""
    import torch

    path = Path(path)
    model = _wrapped(bert_model(seed))
    ids, mask = bert_inputs()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=64)
            seq = torch.export.Dim("sequence", min=2, max=512)
            torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state", "pooler_output"],
                              dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
                              dynamo=True, external_data=False)
        else:
            axes = {0: "batch", 1: "sequence"}
            torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state", "pooler_output"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                            "last_hidden_state": {0: "batch", 1: "sequence"},
                                            "pooler_output": {0: "batch"}},
                              opset_version=17, dynamo=False)
    return path


def export_bert_fixed(path: str | Path, seed: int = 0, seq: int = SEQ, **config) -> Path:
    """BERT-tiny (config overrides, e.g. a smaller vocab) with static [1, seq] inputs, legacy
    TorchScript exporter, opset 17: the form onnxruntime's quantize_static calibrates."""
    import torch

    path = Path(path)
    model = _wrapped(bert_model(seed, **config))
    vocab = config.get("vocab_size", BERT_TINY["vocab_size"])
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, seq), generator=gen, dtype=torch.int64)
    mask = torch.ones((1, seq), dtype=torch.int64)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state", "pooler_output"], opset_version=17, dynamo=False)
    return path
