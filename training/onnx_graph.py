"""Exact clean-ups of the exported injection model's ONNX graph: the NaN guards after attention softmax.

    python training/onnx_graph.py detectors/models/prompt_injection/model.onnx   # rewrites it in place

torch exports masked attention as ``Where(IsNaN(Softmax(s)), 0, Softmax(s))``: a row of scores
that is masked everywhere gives NaN, which the guard turns into zeros. The classifier's windows
never mask a whole row (every window keeps its [CLS] and [SEP] tokens, and padding masks keys, not
queries' rows), so the guard never changes a value; it only costs two passes over every attention
matrix, about 14% of a window's time on one core here (benchmarks/CLASSIFIER.md). Removing it
gives the same outputs bit for bit.
"""

from __future__ import annotations

import sys

import onnx


def drop_nan_guards(model: onnx.ModelProto) -> int:
    """Rewire every ``Where(IsNaN(x), c, x)`` to ``x`` and remove both nodes; returns how many pairs."""
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    replaced: dict[str, str] = {}
    dropped: list[onnx.NodeProto] = []
    for node in graph.node:
        check = producer.get(node.input[0]) if node.op_type == "Where" else None
        if check is not None and check.op_type == "IsNaN" and check.input[0] == node.input[2]:
            replaced[node.output[0]] = node.input[2]
            dropped += [node, check]
    for output in graph.output:
        if output.name in replaced:
            raise ValueError(f"a NaN guard produces the graph output {output.name!r}")
    for node in dropped:
        graph.node.remove(node)
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = replaced.get(name, name)
    _drop_unused(graph, {node.input[1] for node in dropped if node.op_type == "Where"})
    onnx.checker.check_model(model)
    return len(dropped) // 2


def _drop_unused(graph: onnx.GraphProto, names: set[str]) -> None:
    """Remove the initializers and Constant nodes among ``names`` that nothing reads any more."""
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unused = names - read
    for initializer in [i for i in graph.initializer if i.name in unused]:
        graph.initializer.remove(initializer)
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] in unused]:
        graph.node.remove(node)


def rewrite(path: str) -> int:
    """Apply ``drop_nan_guards`` to the model file at ``path`` in place."""
    model = onnx.load(path)
    count = drop_nan_guards(model)
    onnx.save(model, path)
    return count


if __name__ == "__main__":
    for target in sys.argv[1:]:
        print(f"{target}: {rewrite(target)} NaN guard(s) removed")
