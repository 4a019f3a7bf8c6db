"""fp16: weights and activations in half precision, inputs and outputs kept float32."""

from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from edgeforge_gpu.fields import doc
from edgeforge_gpu.quantization.common import PassInputs


@dataclass(frozen=True)
class Fp16Config:
    keep_io_types: bool = field(
        default=True,
        metadata=doc(
            "inputs and outputs stay float32, so callers feed the same tensors as to fp32"
        ),
    )


def run(inputs: PassInputs, target: Path, config: Fp16Config) -> None:
    converted = convert_float_to_float16(
        onnx.load(str(inputs.prepared)),
        keep_io_types=config.keep_io_types,
        node_block_list=list(inputs.float_nodes) or None,
    )
    onnx.save(converted, str(target))
