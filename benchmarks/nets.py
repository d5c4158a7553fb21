"""Complex-wired CIFAR-scale networks built directly as IR graphs, for the scheduler benchmark.

* RandWire (Xie et al., 2019, small regime): a conv stem and three stages,
  each wired by a Watts-Strogatz graph (networkx
  `connected_watts_strogatz_graph(32, 4, 0.75)`), edges oriented from the
  lower to the higher node id; a node sums its inputs and applies
  ReLU -> separable 3x3 conv -> BN; nodes without inputs read the stage input
  (with stride 2), nodes without outputs are summed into the stage output.
* NASNet-A, AmoebaNet-A and DARTS (V2) cells from their published genotypes
  (Zoph et al. 2018; Real et al. 2019; Liu et al. 2019), as described in those
  papers: a cell reads the outputs of the two previous cells (each first
  brought to C channels by ReLU-1x1 conv-BN, or a factorized reduction when
  the resolution differs), every intermediate node adds two operations on
  earlier nodes, and the cell output concatenates the listed nodes.  Stacks
  of normal cells with a reduction cell (stride 2, channels doubled) after
  each third of the depth, a conv stem and a classifier.

Weights are zero-stride numpy views (they cost no host memory); only shapes
matter to the scheduler.  The node list is emitted in the forward order a
framework export would produce, which is the "file order" baseline.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor

# A genotype: per intermediate node, two (operation, input) pairs; input 0 is the
# cell input from two cells back, 1 the previous cell's output, k >= 2 node k.
NASNET_A = {
    "normal": [("sep5", 1), ("sep3", 0), ("sep5", 0), ("sep3", 0), ("avg3", 1), ("skip", 0),
               ("avg3", 0), ("avg3", 0), ("sep3", 1), ("skip", 1)],
    "normal_concat": [2, 3, 4, 5, 6],
    "reduce": [("sep5", 1), ("sep7", 0), ("max3", 1), ("sep7", 0), ("avg3", 1), ("sep5", 0),
               ("skip", 3), ("avg3", 2), ("sep3", 2), ("max3", 1)],
    "reduce_concat": [4, 5, 6],
}
AMOEBANET_A = {
    "normal": [("avg3", 0), ("max3", 1), ("sep3", 0), ("sep5", 2), ("sep3", 0), ("avg3", 3),
               ("sep3", 1), ("skip", 1), ("skip", 0), ("avg3", 1)],
    "normal_concat": [4, 5, 6],
    "reduce": [("avg3", 0), ("sep3", 1), ("max3", 0), ("sep7", 2), ("sep7", 0), ("avg3", 1),
               ("max3", 0), ("max3", 1), ("conv7x1_1x7", 0), ("sep3", 5)],
    "reduce_concat": [3, 4, 6],
}
DARTS_V2 = {
    "normal": [("sep3", 0), ("sep3", 1), ("sep3", 0), ("sep3", 1), ("sep3", 1), ("skip", 0),
               ("skip", 0), ("dil3", 2)],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [("max3", 0), ("max3", 1), ("skip", 2), ("max3", 1), ("max3", 0), ("skip", 2),
               ("skip", 2), ("max3", 1)],
    "reduce_concat": [2, 3, 4, 5],
}


class Builder:
    """Emits IR nodes with NCHW float32 shapes computed on the fly."""

    def __init__(self, name: str, input_shape=(1, 3, 32, 32)):
        self.name = name
        self.nodes: list[Node] = []
        self.tensors: dict[str, Tensor] = {}
        self.count = 0
        self.input = self.tensor(input_shape, "input")

    def tensor(self, shape, name: str | None = None) -> str:
        if name is None:
            self.count += 1
            name = f"t{self.count}"
        self.tensors[name] = Tensor(name, tuple(int(s) for s in shape), DType.FLOAT32)
        return name

    def const(self, shape) -> str:
        self.count += 1
        name = f"w{self.count}"
        data = np.broadcast_to(np.zeros((), dtype=np.float32), tuple(shape))
        self.tensors[name] = Tensor(name, tuple(shape), DType.FLOAT32, data=data)
        return name

    def shape(self, t: str) -> tuple[int, ...]:
        return self.tensors[t].shape

    def node(self, op: str, inputs: list[str], out_shape, attrs=None) -> str:
        out = self.tensor(out_shape)
        self.nodes.append(Node(f"{op.lower()}_{len(self.nodes)}", op, inputs, [out], attrs or {}))
        return out

    # ----- layers --------------------------------------------------------
    def conv(self, x: str, cout: int, k=(1, 1), stride: int = 1, group: int = 1,
             dilation: int = 1) -> str:
        n, c, h, w = self.shape(x)
        kh, kw = k if isinstance(k, tuple) else (k, k)
        weight = self.const((cout, c // group, kh, kw))
        pads = [dilation * (kh // 2), dilation * (kw // 2)] * 2
        ho, wo = (h + stride - 1) // stride, (w + stride - 1) // stride
        return self.node("Conv", [x, weight], (n, cout, ho, wo),
                         {"kernel_shape": [kh, kw], "strides": [stride, stride], "group": group,
                          "dilations": [dilation, dilation], "pads": pads})

    def bn(self, x: str) -> str:
        c = self.shape(x)[1]
        params = [self.const((c,)) for _ in range(4)]
        return self.node("BatchNormalization", [x] + params, self.shape(x))

    def relu(self, x: str) -> str:
        return self.node("Relu", [x], self.shape(x))

    def pool(self, x: str, kind: str, stride: int) -> str:
        n, c, h, w = self.shape(x)
        op = "MaxPool" if kind == "max" else "AveragePool"
        return self.node(op, [x], (n, c, (h + stride - 1) // stride, (w + stride - 1) // stride),
                         {"kernel_shape": [3, 3], "strides": [stride, stride], "pads": [1, 1, 1, 1]})

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b], self.shape(a))

    def sum(self, xs: list[str]) -> str:
        if len(xs) == 1:
            return xs[0]
        return self.node("Sum", xs, self.shape(xs[0]))

    def concat(self, xs: list[str]) -> str:
        n, _, h, w = self.shape(xs[0])
        return self.node("Concat", xs, (n, sum(self.shape(x)[1] for x in xs), h, w), {"axis": 1})

    def sep_conv(self, x: str, cout: int, k: int, stride: int, repeat: int = 2) -> str:
        """ReLU, depthwise k x k, pointwise, BN; twice (the second with stride 1)."""
        for r in range(repeat):
            c = self.shape(x)[1]
            x = self.relu(x)
            x = self.conv(x, c, (k, k), stride if r == 0 else 1, group=c)
            x = self.conv(x, cout)
            x = self.bn(x)
        return x

    def dil_conv(self, x: str, cout: int, stride: int) -> str:
        c = self.shape(x)[1]
        x = self.relu(x)
        x = self.conv(x, c, (3, 3), stride, group=c, dilation=2)
        return self.bn(self.conv(x, cout))

    def relu_conv_bn(self, x: str, cout: int) -> str:
        return self.bn(self.conv(self.relu(x), cout))

    def factorized_reduce(self, x: str, cout: int) -> str:
        x = self.relu(x)
        a = self.conv(x, cout // 2, stride=2)
        b = self.conv(x, cout - cout // 2, stride=2)
        return self.bn(self.concat([a, b]))

    def classifier(self, x: str, classes: int = 10) -> str:
        n, c, _, _ = self.shape(x)
        x = self.node("GlobalAveragePool", [x], (n, c, 1, 1))
        shape = self.const((2,))
        self.tensors[shape] = Tensor(shape, (2,), DType.INT64,
                                     data=np.array([n, c], dtype=np.int64))
        x = self.node("Reshape", [x, shape], (n, c))
        return self.node("Gemm", [x, self.const((classes, c)), self.const((classes,))], (n, classes),
                         {"transB": 1})

    def graph(self, output: str) -> Graph:
        g = Graph(self.name, self.nodes, self.tensors, [self.input], [output])
        g.validate()
        return g


def _operation(b: Builder, op: str, x: str, c: int, stride: int) -> str:
    if op.startswith("sep"):
        return b.sep_conv(x, c, int(op[3:]), stride)
    if op == "dil3":
        return b.dil_conv(x, c, stride)
    if op in ("avg3", "max3"):
        return b.pool(x, op[:3], stride)
    if op == "skip":
        return x if stride == 1 else b.factorized_reduce(x, c)
    if op == "conv7x1_1x7":
        x = b.relu(x)
        x = b.conv(x, c, (1, 7), stride)
        x = b.conv(x, c, (7, 1))
        return b.bn(x)
    raise ValueError(op)


def _cell(b: Builder, genotype: dict, s0: str, s1: str, c: int, reduction: bool,
          reduction_prev: bool) -> str:
    s0 = b.factorized_reduce(s0, c) if reduction_prev else b.relu_conv_bn(s0, c)
    s1 = b.relu_conv_bn(s1, c)
    ops = genotype["reduce" if reduction else "normal"]
    concat = genotype["reduce_concat" if reduction else "normal_concat"]
    states = [s0, s1]
    for i in range(len(ops) // 2):
        outs = []
        for op, src in ops[2 * i: 2 * i + 2]:
            stride = 2 if reduction and src < 2 else 1
            outs.append(_operation(b, op, states[src], c, stride))
        states.append(b.add(outs[0], outs[1]))
    return b.concat([states[k] for k in concat])


def nas_network(name: str, genotype: dict, cells: int = 8, channels: int = 16,
                stem_multiplier: int = 3) -> Graph:
    """A CIFAR network of `cells` cells with reductions at 1/3 and 2/3 of the depth."""
    b = Builder(name)
    s = b.bn(b.conv(b.input, stem_multiplier * channels, (3, 3)))
    s0 = s1 = s
    c = channels
    reduction_prev = False
    for i in range(cells):
        reduction = i in (cells // 3, 2 * cells // 3)
        if reduction:
            c *= 2
        out = _cell(b, genotype, s0, s1, c, reduction, reduction_prev)
        s0, s1 = s1, out
        reduction_prev = reduction
    return b.graph(b.classifier(s1))


def randwire(name: str = "randwire", nodes: int = 32, k: int = 4, p: float = 0.75,
             channels: int = 16, seed: int = 0) -> Graph:
    """Three randomly wired stages (Watts-Strogatz), CIFAR input."""
    import networkx as nx

    b = Builder(name)
    x = b.bn(b.conv(b.relu(b.bn(b.conv(b.input, channels // 2, (3, 3)))), channels, (3, 3)))
    c = channels
    for stage in range(3):
        ws = nx.connected_watts_strogatz_graph(nodes, k, p, seed=seed + stage)
        preds = {v: sorted(u for u in ws.neighbors(v) if u < v) for v in range(nodes)}
        succs = {v: sorted(u for u in ws.neighbors(v) if u > v) for v in range(nodes)}
        c_out = c * 2 if stage else c
        out: dict[int, str] = {}
        for v in range(nodes):
            if preds[v]:
                agg = b.sum([out[u] for u in preds[v]])
                out[v] = b.sep_conv(agg, c_out, 3, 1, repeat=1)
            else:
                out[v] = b.sep_conv(x, c_out, 3, 2, repeat=1)
        ends = [out[v] for v in range(nodes) if not succs[v]]
        x = b.sum(ends)
        c = c_out
    return b.graph(b.classifier(x))


def complex_nets() -> dict[str, Graph]:
    return {
        "RandWire-WS(32,4,0.75)": randwire(),
        "NASNet-A": nas_network("nasnet_a", NASNET_A, cells=14, channels=16),
        "AmoebaNet-A": nas_network("amoebanet_a", AMOEBANET_A, cells=14, channels=16),
        "DARTS-V2": nas_network("darts_v2", DARTS_V2, cells=14, channels=16),
    }


if __name__ == "__main__":
    for label, g in complex_nets().items():
        print(label, len(g.nodes))
