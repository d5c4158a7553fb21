"""C lowering of PatchedChain (onnx2mcu/ops/patch.py): patch-based inference.

One loop over the patches; per patch: gather the input region (with its halo; the folded
Transpose / Pad on the way: runtime_c/o2m_s8_patch.c) into the first patch buffer, run each
inner conv from buffer k to buffer k+1 with the portable int8 kernel (o2m_conv2d_s8) or, on
arm-dsp boards, the int8_dsp kernel where its rule takes the conv (folded bias; a dense conv's
tap-offset table per patch input size; its im2col scratch after the patch buffers unless the
node is in Graph.scratch_free), on the patch's geometry (its input and output size and its
pads, non-zero only at the image's borders), then scatter the last buffer into the output.
The buffers live in the node's scratch at the plan's offsets; the geometry is two small const
tables (grid rows, grid columns).  The Params are the ones the simulator's reference reads
(PatchPlan).
"""
from __future__ import annotations

from onnx2mcu.codegen.context import S8_PATCH
from onnx2mcu.codegen.emit.conv import c_struct
from onnx2mcu.codegen.emit import int8_dsp as D
from onnx2mcu.codegen.emit.int8 import HEADER, S8_CONV, _requant
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops.memrw import DOMAIN
from onnx2mcu.ops.patch import PATCHED, chain_graph, plan



def _dsp_layers(node: Node, graph, p) -> list[bool]:
    """Per inner conv: whether the arm-dsp kernel takes it (int8_dsp's rule, on the chain's graph)."""
    sub = chain_graph(node, graph)
    return [D.conv_applies(inner, sub) is None for inner in p.nodes]


def _dsp_col(node: Node, graph, p, dsp: list[bool]) -> int:
    """The arm-dsp dense kernels' im2col scratch (O2M_DSP_CONV_SCRATCH of the largest K), after
    the patch buffers; 0 in the scratch-free form (Graph.scratch_free) or without a dense layer."""
    if node.name in graph.scratch_free:
        return 0
    sizes = [6 * D.col_bytes(p.shapes[k][0] * kern[0] * kern[1])
             for k, (conv, kern) in enumerate((c.conv, c.window.kernel) for c in p.convs)
             if dsp[k] and conv.groups == 1]
    return max(sizes, default=0)


def _dsp_scratch(node: Node, graph) -> int:
    p = plan(node, graph)
    return p.scratch_bytes + _dsp_col(node, graph, p, _dsp_layers(node, graph, p))


def _emit_portable(node: Node, ctx) -> list[str]:
    return _emit_patched(node, ctx, dsp_backend=False)


def _emit_dsp(node: Node, ctx) -> list[str]:
    return _emit_patched(node, ctx, dsp_backend=True)


def _emit_patched(node: Node, ctx, dsp_backend: bool) -> list[str]:
    p = plan(node, ctx.graph)
    x, y = node.inputs[0], node.outputs[0]
    if ctx.same_bytes(x, y):
        ctx.refuse(node, "output placed over the input of a PatchedChain")
    dsp = _dsp_layers(node, ctx.graph, p) if dsp_backend else [False] * len(p.convs)
    ctx.need(S8_PATCH)
    if not all(dsp):
        ctx.need(S8_CONV)
        ctx.include(HEADER[S8_CONV])
    if any(dsp):
        ctx.need(D.S8_CONV_DSP)
        ctx.include(D.HEADER)
    sub = chain_graph(node, ctx.graph)
    structs, calls = [], []
    for k, (inner, conv) in enumerate(zip(p.nodes, p.convs)):
        c = conv.conv
        w = ctx.shape(inner.inputs[1])
        bias = inner.inputs[2] if len(inner.inputs) > 2 else ""
        fields = {"n": 1, "c_in": p.shapes[k][0], "h_in": 0, "w_in": 0, "c_out": w[0], "h_out": 0, "w_out": 0,
                  "k_h": w[2], "k_w": w[3], "stride_h": c.stride[0], "stride_w": c.stride[1],
                  "dil_h": c.dilation[0], "dil_w": c.dilation[1], "pad_top": 0, "pad_left": 0}
        if dsp[k]:
            weights, raw = D.weights_and_bias(inner, sub, w[0])
            fields.update({"pad_value": -c.input_offset,
                           "bias": ctx.int_array(D.folded_bias(weights, raw, c.input_offset), "bias_folded"),
                           "raw_bias": ctx.ptr(bias), "taps": "NULL", "requant": D.requant_fields(ctx, c)})
            structs.append(("o2m_conv2d_s8_dsp_params",
                            ctx.declare("o2m_conv2d_s8_dsp_params", c_struct(fields), "patch_conv_dsp")))
            fn = "o2m_depthwise_conv2d_s8_dsp" if c.groups > 1 else "o2m_conv2d_s8_dsp"
            calls.append((fn, ctx.ptr(inner.inputs[1]), None))
        else:
            fields.update({"groups": c.groups, "input_offset": c.input_offset,
                           "requant": _requant(ctx, c, conv.mode)})
            if c.filter_offset:
                fields["filter_offset"] = c.filter_offset
            structs.append(("o2m_conv2d_s8_params",
                            ctx.declare("o2m_conv2d_s8_params", c_struct(fields), "patch_conv")))
            calls.append(("o2m_conv2d_s8", ctx.ptr(inner.inputs[1]), ctx.ptr(bias)))
    # The geometry is separable: a patch's rows depend only on its grid row, its columns only
    # on its grid column (plan_geometry clips each axis alone).  One table of grid rows, one of
    # grid columns: per layer (input extent, pad before, output extent, size variant), then the
    # gather run and the scatter run.
    gh, gw = p.grid
    row_of = [p.patches[r * gw] for r in range(gh)]
    col_of = [p.patches[c] for c in range(gw)]

    def axis_table(patches, lo: int):
        variants = [sorted({layers[k].in_rect[lo + 1] - layers[k].in_rect[lo] for layers in patches})
                    for k in range(len(p.convs))]
        table = []
        for layers in patches:
            for k, g in enumerate(layers):
                extent = g.in_rect[lo + 1] - g.in_rect[lo]
                table += [extent, g.pads[lo // 2], g.out_rect[lo + 1] - g.out_rect[lo], variants[k].index(extent)]
            table += [layers[0].in_rect[lo], layers[0].in_rect[lo + 1],
                      layers[-1].out_rect[lo], layers[-1].out_rect[lo + 1]]
        return table, variants

    rows, h_variants = axis_table(row_of, 0)
    cols, w_variants = axis_table(col_of, 2)
    # the arm-dsp dense kernels read interior windows through a tap-offset table, which depends
    # on the patch's input size: one table per (layer, h_in, w_in), all in one array
    taps, tap_base = [], {}
    for k, conv in enumerate(p.convs):
        if not (dsp[k] and conv.conv.groups == 1):
            continue
        tap_base[k] = len(taps)
        kh, kw = conv.window.kernel
        dh, dw = conv.conv.dilation
        for h_in in h_variants[k]:
            for w_in in w_variants[k]:
                taps += [ic * h_in * w_in + r * dh * w_in + q * dw
                         for ic in range(p.shapes[k][0]) for r in range(kh) for q in range(kw)]
    stride = 4 + 4 * len(p.convs)
    itype = "int16_t" if max(rows + cols) < 2 ** 15 else "int32_t"
    row_table = ctx.int_array(rows, "patch_rows", itype)
    col_table = ctx.int_array(cols, "patch_cols", itype)
    tap_table = ctx.int_array(taps, "patch_taps") if taps else None
    scratch = ctx.scratch(node, DType.INT8)
    bufs = [f"({scratch} + {off})" if off else scratch for off in p.buffer_offsets]
    col = _dsp_col(node, ctx.graph, p, dsp) if dsp_backend else 0
    col_ptr = f"({scratch} + {p.scratch_bytes})" if col else "NULL"
    if p.layout == "nhwc":
        _, h, w, c = p.input_shape
    else:
        _, c, h, w = p.input_shape
    c_out, h_out, w_out = p.shapes[-1]
    run = 4 * len(p.convs)
    lines = ["{", "    int32_t pr, pc;",
             f"    for (pr = 0; pr < {gh}; ++pr) {{",
             f"        const {itype} *gr = &{row_table}[pr * {stride}];",
             f"        for (pc = 0; pc < {gw}; ++pc) {{",
             f"            const {itype} *gc = &{col_table}[pc * {stride}];",
             f"            o2m_patch_gather_s8({ctx.ptr(x)}, {int(p.layout == 'nhwc')}, {c}, {h}, {w}, {p.pads[0]}, "
             f"{p.pads[1]}, (int8_t){p.pad_value}, gr[{run}], gr[{run + 1}], gc[{run}], gc[{run + 1}], {bufs[0]});"]
    for k, ((ctype, name), (fn, weights, bias)) in enumerate(zip(structs, calls)):
        b = 4 * k
        lines += ["            {",
                  f"                {ctype} q = {name};",
                  f"                q.h_in = gr[{b}]; q.pad_top = gr[{b + 1}]; q.h_out = gr[{b + 2}];",
                  f"                q.w_in = gc[{b}]; q.pad_left = gc[{b + 1}]; q.w_out = gc[{b + 2}];"]
        if fn == "o2m_conv2d_s8":
            lines.append(f"                {fn}(&q, {bufs[k]}, {weights}, {bias}, {bufs[k + 1]});")
        elif fn == "o2m_conv2d_s8_dsp":
            size = p.shapes[k][0] * p.convs[k].window.kernel[0] * p.convs[k].window.kernel[1]
            lines.append(f"                q.taps = &{tap_table}[{tap_base[k]} + ((int32_t)gr[{b + 3}] * "
                         f"{len(w_variants[k])} + gc[{b + 3}]) * {size}];")
            lines.append(f"                {fn}(&q, {bufs[k]}, {weights}, {bufs[k + 1]}, {col_ptr});")
        else:
            lines.append(f"                {fn}(&q, {bufs[k]}, {weights}, {bufs[k + 1]}, NULL);")
        lines.append("            }")
    lines += [f"            o2m_patch_scatter_s8({bufs[-1]}, {c_out}, {h_out}, {w_out}, gr[{run + 2}], gr[{run + 3}], "
              f"gc[{run + 2}], gc[{run + 3}], {ctx.ptr(y)});",
              "        }", "    }", "}"]
    return lines


register_kernel(PATCHED, _emit_portable, domain=DOMAIN, dtypes=(DType.INT8,), sources=(S8_CONV, S8_PATCH))
register_kernel(PATCHED, _emit_dsp, domain=DOMAIN, dtypes=(DType.INT8,), backend=D.BACKEND,
                sources=(S8_CONV, S8_PATCH, D.S8_CONV_DSP), scratch_bytes=_dsp_scratch)
