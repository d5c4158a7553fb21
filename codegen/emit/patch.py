"""C lowering of PatchedChain (onnx2mcu/ops/patch.py): patch-based inference.

One loop over the patches; per patch: gather the input region (with its halo; the folded
Transpose / Pad on the way: runtime_c/o2m_s8_patch.c) into the first patch buffer, run each
inner conv from buffer k to buffer k+1 with the portable int8 kernel (o2m_conv2d_s8) on the
patch's geometry (its input and output size and its pads, non-zero only at the image's
borders), then scatter the last buffer into the output.  The buffers live in the node's
scratch at the plan's offsets; the per-patch geometry is one const table.  The Params are
the ones the simulator's reference reads (PatchPlan).
"""
from __future__ import annotations

from onnx2mcu.codegen.context import S8_PATCH
from onnx2mcu.codegen.emit.conv import c_struct
from onnx2mcu.codegen.emit.int8 import HEADER, S8_CONV, _requant
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops.memrw import DOMAIN
from onnx2mcu.ops.patch import PATCHED, plan

LAYER_FIELDS = 6  # h_in, w_in, pad_top, pad_left, h_out, w_out


def _emit_patched(node: Node, ctx) -> list[str]:
    p = plan(node, ctx.graph)
    if p.mode != "fixed" and any(c.conv.filter_offset for c in p.convs):
        ctx.refuse(node, "asymmetric weights")
    x, y = node.inputs[0], node.outputs[0]
    if ctx.same_bytes(x, y):
        ctx.refuse(node, "output placed over the input of a PatchedChain")
    ctx.need(S8_CONV, S8_PATCH)
    ctx.include(HEADER[S8_CONV])
    structs = []
    for inner, conv in zip(p.nodes, p.convs):
        c = conv.conv
        w = ctx.shape(inner.inputs[1])
        c_in = p.shapes[len(structs)][0]
        fields = {"n": 1, "c_in": c_in, "h_in": 0, "w_in": 0, "c_out": w[0], "h_out": 0, "w_out": 0,
                  "k_h": w[2], "k_w": w[3], "stride_h": c.stride[0], "stride_w": c.stride[1],
                  "dil_h": c.dilation[0], "dil_w": c.dilation[1], "pad_top": 0, "pad_left": 0,
                  "groups": c.groups, "input_offset": c.input_offset, "requant": _requant(ctx, c, conv.mode)}
        if c.filter_offset:
            fields["filter_offset"] = c.filter_offset
        structs.append(ctx.declare("o2m_conv2d_s8_params", c_struct(fields), "patch_conv"))
    rows = []
    for layers in p.patches:
        rows += list(layers[0].in_rect)
        for g in layers:
            rows += [g.in_rect[1] - g.in_rect[0], g.in_rect[3] - g.in_rect[2], g.pads[0], g.pads[1],
                     g.out_rect[1] - g.out_rect[0], g.out_rect[3] - g.out_rect[2]]
        rows += list(layers[-1].out_rect)
    stride = 8 + LAYER_FIELDS * len(p.convs)
    geom = ctx.int_array(rows, "patch_geom")
    scratch = ctx.scratch(node, DType.INT8)
    bufs = [f"({scratch} + {off})" if off else scratch for off in p.buffer_offsets]
    if p.layout == "nhwc":
        _, h, w, c = p.input_shape
    else:
        _, c, h, w = p.input_shape
    c_out, h_out, w_out = p.shapes[-1]
    lines = ["{", "    int32_t patch;",
             f"    for (patch = 0; patch < {len(p.patches)}; ++patch) {{",
             f"        const int32_t *g = &{geom}[patch * {stride}];",
             f"        o2m_patch_gather_s8({ctx.ptr(x)}, {int(p.layout == 'nhwc')}, {c}, {h}, {w}, {p.pads[0]}, "
             f"{p.pads[1]}, (int8_t){p.pad_value}, g[0], g[1], g[2], g[3], {bufs[0]});"]
    for k, (inner, name) in enumerate(zip(p.nodes, structs)):
        base = 4 + LAYER_FIELDS * k
        bias = inner.inputs[2] if len(inner.inputs) > 2 else ""
        lines += ["        {",
                  f"            o2m_conv2d_s8_params q = {name};",
                  f"            q.h_in = g[{base}]; q.w_in = g[{base + 1}]; q.pad_top = g[{base + 2}]; "
                  f"q.pad_left = g[{base + 3}]; q.h_out = g[{base + 4}]; q.w_out = g[{base + 5}];",
                  f"            o2m_conv2d_s8(&q, {bufs[k]}, {ctx.ptr(inner.inputs[1])}, {ctx.ptr(bias)}, "
                  f"{bufs[k + 1]});",
                  "        }"]
    last = 4 + LAYER_FIELDS * len(p.convs)
    lines += [f"        o2m_patch_scatter_s8({bufs[-1]}, {c_out}, {h_out}, {w_out}, g[{last}], g[{last + 1}], "
              f"g[{last + 2}], g[{last + 3}], {ctx.ptr(y)});",
              "    }", "}"]
    return lines


register_kernel(PATCHED, _emit_patched, domain=DOMAIN, dtypes=(DType.INT8,), sources=(S8_CONV, S8_PATCH))
