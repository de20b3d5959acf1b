"""The exported model's graph clean-up: NaN guards after softmax removed, outputs unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from training.onnx_graph import drop_nan_guards


def _attention_like(guard_feeds_output: bool = False) -> onnx.ModelProto:
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    nodes = [
        helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
        helper.make_node("IsNaN", ["probs"], ["nan"]),
        helper.make_node("Where", ["nan", "zero", "probs"], ["guarded"]),
    ]
    if not guard_feeds_output:
        nodes.append(helper.make_node("MatMul", ["guarded", "values"], ["out"]))
    graph = helper.make_graph(
        nodes,
        "attention",
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 4, 4]),
            helper.make_tensor_value_info("values", TensorProto.FLOAT, [1, 2, 4, 3]),
        ],
        [
            helper.make_tensor_value_info("guarded", TensorProto.FLOAT, [1, 2, 4, 4])
            if guard_feeds_output
            else helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 4, 3])
        ],
        [zero],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(None, feed)[0]
    return result


def test_nan_guards_are_removed_and_every_output_stays_the_same() -> None:
    rng = np.random.default_rng(7)
    feed = {
        "scores": rng.normal(size=(1, 2, 4, 4)).astype(np.float32),
        "values": rng.normal(size=(1, 2, 4, 3)).astype(np.float32),
    }
    feed["scores"][0, 0, 1, 2] = -np.inf  # a masked key; no row is masked whole, as in our windows
    model = _attention_like()
    before = _run(model, feed)
    assert drop_nan_guards(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Softmax", "MatMul"]
    assert not model.graph.initializer  # the guard's constant went with it
    assert np.array_equal(_run(model, feed), before)


def test_a_guard_that_is_the_graph_output_is_left_alone() -> None:
    model = _attention_like(guard_feeds_output=True)
    with pytest.raises(ValueError, match="graph output"):
        drop_nan_guards(model)
    assert [n.op_type for n in model.graph.node] == ["Softmax", "IsNaN", "Where"]
