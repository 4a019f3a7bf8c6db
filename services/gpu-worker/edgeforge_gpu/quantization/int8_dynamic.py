"""int8 dynamic: int8 weights; activations quantized at run time from their observed range, so
no calibration data is needed."""

from dataclasses import dataclass, field
from pathlib import Path

from onnxruntime.quantization import QuantType, quantize_dynamic

from edgeforge_gpu.fields import doc
from edgeforge_gpu.quantization.common import PassInputs


@dataclass(frozen=True)
class Int8DynamicConfig:
    per_channel: bool = field(
        default=False, metadata=doc("one weight scale per output channel instead of per tensor")
    )
    reduce_range: bool = field(
        default=False, metadata=doc("7-bit weights, for x86 CPUs without VNNI")
    )


def run(inputs: PassInputs, target: Path, config: Int8DynamicConfig) -> None:
    quantize_dynamic(
        inputs.prepared,
        target,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(inputs.float_nodes),
    )
