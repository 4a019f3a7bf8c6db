"""Which nodes a variant hurts most: the accuracy fallback keeps those in float.

Both models run on the same images with every intermediate tensor exposed (ONNX Runtime's
qdq_loss_debug tools). A weight-bearing node's sensitivity is the quantization noise it adds: the
noise-to-signal power ratio of its output in the variant, as its consumers see it (after the
QuantizeLinear/DequantizeLinear pair, in QDQ models), minus the worst ratio among its inputs.
Ratios, not dB, because noise powers add: a node that takes a 40 dB input to 30 dB adds more than
one that takes 60 to 50. The ratio is averaged over channels rather than taken over the whole
tensor: one outlier channel sets a per-tensor scale so coarse that every other channel rounds to
zero, yet it holds most of the tensor's power and would hide that loss.

Keeping a node in float must keep its output in float too, and a QDQ model quantizes a tensor for
any quantized node that reads it; so each node comes with a group: itself, the activations fused
after it, and every node that consumes its output.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)

from edgeforge_gpu.quantization.calibration import ArrayCalibrationReader
from edgeforge_gpu.quantization.common import WEIGHT_OPS

# Quantizers fold these into the op before them (QDQ drops a Relu whose range the quantization
# already clips), so the op's own output may not exist in the variant: it is read after them.
ELEMENTWISE = frozenset({"Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid"})


@dataclass(frozen=True)
class NodeSensitivity:
    node: str
    op_type: str
    added_noise: float
    """Increase of noise power / signal power from the node's inputs to its output."""
    group: tuple[str, ...]
    """Nodes to keep in float together so that this node's output stays float."""


def _activations(model: Path, images: np.ndarray, scratch: Path) -> dict[str, list[np.ndarray]]:
    augmented = scratch / f"{model.stem}.tensors.onnx"
    modify_model_output_intermediate_tensors(str(model), str(augmented))
    input_name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    return collect_activations(str(augmented), ArrayCalibrationReader(images, input_name))


def _channel_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """(channels, values per channel and sample) of each tensor whose shape is known."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if len(dims) >= 2 and all(dims[1:]):
            shapes[value.name] = (dims[1], int(np.prod(dims[2:], dtype=np.int64)))
    return shapes


def _noise_to_signal(
    reference: list[np.ndarray], seen: list[np.ndarray], shape: tuple[int, int] | None
) -> float:
    """Mean over channels of noise power / signal power; channels that are always zero (dead
    ReLUs) carry no signal to lose and are left out."""
    channels, inner = shape or (1, -1)
    ref = np.concatenate([a.reshape(-1, channels, inner) for a in reference]).astype(np.float64)
    got = np.concatenate([a.reshape(-1, channels, inner) for a in seen]).astype(np.float64)
    signal = (ref**2).sum(axis=(0, 2))
    noise = ((ref - got) ** 2).sum(axis=(0, 2))
    live = signal > 1e-12 * max(float(signal.max()), 1e-30)
    return float((noise[live] / signal[live]).mean()) if live.any() else 0.0


def rank_nodes(
    float_model: Path, variant: Path, images: np.ndarray, scratch: Path
) -> list[NodeSensitivity]:
    """Weight-bearing nodes of `float_model`, the most sensitive first."""
    reference = _activations(float_model, images, scratch)
    observed = _activations(variant, images, scratch)
    # In QDQ models, what consumers see of tensor T is its dequantized copy.
    dequantized = {t: m["post_qdq"] for t, m in create_activation_matching(observed).items()}
    model = onnx.load(str(float_model), load_external_data=False)
    shapes = _channel_shapes(model)
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def noise(tensor: str) -> float | None:
        if tensor in graph_inputs:
            return 0.0
        seen = dequantized.get(tensor, observed.get(tensor))
        if tensor not in reference or seen is None:
            return None
        return _noise_to_signal(reference[tensor], seen, shapes.get(tensor))

    ranked = []
    for node in graph.node:
        if node.op_type not in WEIGHT_OPS:
            continue
        group, tensor = [node.name], node.output[0]
        after = consumers.get(tensor, [])
        while len(after) == 1 and after[0].op_type in ELEMENTWISE:
            group.append(after[0].name)
            tensor = after[0].output[0]
            after = consumers.get(tensor, [])
        out = noise(tensor)
        if out is None:
            continue
        group.extend(n.name for n in after)
        inputs = [n for n in (noise(name) for name in node.input if name) if n is not None]
        added = max(0.0, out - max(inputs, default=0.0))
        ranked.append(NodeSensitivity(node.name, node.op_type, added, tuple(group)))
    return sorted(ranked, key=lambda s: s.added_noise, reverse=True)
