"""int4 weight-only: MatMul weights packed into 4-bit blocks (MatMulNBits); activations and every
other op stay float. Gemm nodes with constant weights are rewritten as MatMul + Add first,
because ONNX Runtime's n-bit quantizer handles MatMul only."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

from edgeforge_gpu.fields import doc
from edgeforge_gpu.quantization.common import NotApplicable, PassInputs

# The quantizer logs a line per node at INFO; the worker's log wants the outcome, not the walk.
logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Int4WeightOnlyConfig:
    block_size: int = field(
        default=32, metadata=doc("weights per quantization block along the reduction axis")
    )
    symmetric: bool = field(default=True, metadata=doc("symmetric blocks (no zero point)"))
    accuracy_level: int | None = field(
        default=None,
        metadata=doc("MatMulNBits compute type: null = fp32, 4 = int8 (faster on CPU, less exact)"),
    )


def _attribute(node: onnx.NodeProto, name: str, default: float) -> float:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _gemm_as_matmul(model: onnx.ModelProto) -> None:
    """Y = A @ B' + C for Gemm nodes with a constant B, alpha = beta = 1 and no transposed A."""
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        plain = (
            _attribute(node, "alpha", 1.0) == 1.0
            and _attribute(node, "beta", 1.0) == 1.0
            and not _attribute(node, "transA", 0)
        )
        if node.op_type != "Gemm" or node.input[1] not in weights or not plain:
            nodes.append(node)
            continue
        b = numpy_helper.to_array(weights[node.input[1]])
        if _attribute(node, "transB", 0):
            b = b.T
        b_name = f"{node.input[1]}_k_by_n"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(b), b_name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        # The MatMul keeps the Gemm's name, so the fallback's float nodes still match it.
        nodes.append(helper.make_node("MatMul", [node.input[0], b_name], [product], name=node.name))
        if has_bias:
            nodes.append(
                helper.make_node(
                    "Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_bias"
                )
            )
    del graph.node[:]
    graph.node.extend(nodes)


def run(inputs: PassInputs, target: Path, config: Int4WeightOnlyConfig) -> None:
    model = onnx.load(str(inputs.prepared))
    _gemm_as_matmul(model)
    weights = {i.name for i in model.graph.initializer}
    if not any(n.op_type == "MatMul" and n.input[1] in weights for n in model.graph.node):
        raise NotApplicable("the model has no MatMul or Gemm with constant weights")
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=4,
        block_size=config.block_size,
        is_symmetric=config.symmetric,
        accuracy_level=config.accuracy_level,
        nodes_to_exclude=list(inputs.float_nodes),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
