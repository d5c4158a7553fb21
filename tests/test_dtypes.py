"""The one dtype table (onnx2mcu/ir.py DTYPE_TABLE): its rows agree with onnx, numpy and the
C types, the C names follow one suffix scheme, and the other tables derive from it."""
from __future__ import annotations

import ctypes
import re
from importlib import resources

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from onnx2mcu.codegen import context, generate
from onnx2mcu.errors import UserError
from onnx2mcu.frontend import convert, load
from onnx2mcu.ir import DTYPE_TABLE, DType, union_members
from onnx2mcu.ops.registry import ANY_SUPPORTED

pytestmark = pytest.mark.unit

SCHEME = {"f32", "s8", "u8", "s16", "s32", "s64", "b8", "u32"}


def test_every_dtype_has_a_row():
    assert set(DTYPE_TABLE) == set(DType)


@pytest.mark.parametrize("dtype", [d for d in DType if d.onnx is not None], ids=lambda d: d.value)
def test_onnx_code_matches_onnx(dtype):
    assert onnx.helper.tensor_dtype_to_np_dtype(dtype.onnx) == (
        np.dtype(np.bool_) if dtype is DType.BOOL else dtype.numpy)
    assert DType.from_onnx(dtype.onnx) is dtype


@pytest.mark.parametrize("dtype", list(DType), ids=lambda d: d.value)
def test_c_type_has_the_element_size(dtype):
    c_type = getattr(ctypes, "c_" + dtype.ctype.removesuffix("_t"))
    assert ctypes.sizeof(c_type) == dtype.itemsize
    assert dtype.suffix in SCHEME


def test_suffixes_are_one_per_dtype_and_members_one_per_c_type():
    suffixes = [d.suffix for d in DType]
    assert len(set(suffixes)) == len(suffixes)
    ctype_of = {}
    for d in DType:
        assert ctype_of.setdefault(d.member, d.ctype) == d.ctype, d
    members = union_members()
    assert [m for _, m, _ in members] == ["s64", "f32", "s32", "u32", "s16", "s8", "u8"]
    assert all(per_word * ctypes.sizeof(getattr(ctypes, "c_" + c.removesuffix("_t"))) == 8
               for c, _, per_word in members)


def test_other_tables_derive_from_it():
    for d in DType:
        assert context.C_TYPES[d] == d.ctype and context.UNION_MEMBER[d] == d.member
        assert context.KERNEL_SUFFIX[d] == generate.IO_SUFFIX[d] == d.suffix
        assert context.C_NUMPY[d.member].itemsize == d.itemsize
    assert convert._DTYPES == {d.onnx: d for d in DType if d.onnx is not None}
    assert ANY_SUPPORTED == {d for d in DType if d.info.ops}


def test_runtime_c_names_follow_the_scheme():
    """No kernel or harness function keeps an old suffix (_i64, _i32, _i8, u8bool, _bool)."""
    old = re.compile(r"\bo2m_\w*?_(i8|i16|i32|i64|u8bool|bool)\b")
    for package in ("onnx2mcu.runtime_c", "onnx2mcu.codegen"):
        for entry in _walk(resources.files(package)):
            if entry.name.endswith((".c", ".h", ".j2")):
                found = old.findall(entry.read_text())
                assert not found, f"{entry.name}: {found}"


def _walk(root):
    for entry in root.iterdir():
        if entry.is_dir():
            yield from _walk(entry)
        else:
            yield entry


def test_a_dtype_the_ops_do_not_take_is_refused_clearly():
    """INT16 has a row (C type, union member, I/O) but no op takes it yet: one clear error."""
    node = h.make_node("Cast", ["x"], ["y"], to=T.INT16, name="to_int16")
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [3])],
                         [h.make_tensor_value_info("y", T.INT16, [3])])
    with pytest.raises(UserError, match="to_int16"):
        load(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))
