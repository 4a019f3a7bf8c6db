"""The unsigned part of a model manifest (DESIGN.md section 3): everything a device needs to know
about a variant except its version, expiry and signature, which the publisher adds."""

from dataclasses import dataclass, field

from edgeforge_gpu.evaluation.model_facts import TensorSpec
from edgeforge_gpu.fields import doc


@dataclass(frozen=True)
class VariantOptions:
    weight_type: str = field(metadata=doc("float32 | float16 | int8 | uint8 | int4"))
    activation_type: str = field(
        metadata=doc("float32 | float16 | uint8 | uint16 (dynamic: uint8, computed at run time)")
    )
    calibration: str | None = field(
        default=None, metadata=doc("minmax | entropy | percentile; null without one")
    )
    per_channel: bool = field(default=False, metadata=doc("one weight scale per output channel"))
    reduce_range: bool = field(default=False, metadata=doc("7-bit weights (x86 without VNNI)"))
    block_size: int | None = field(
        default=None, metadata=doc("int4: weights per quantization block")
    )
    float_nodes: list[str] = field(
        default_factory=list,
        metadata=doc("nodes the accuracy fallback kept in float, by ONNX node name"),
    )


@dataclass(frozen=True)
class VariantSpec:
    format: str = field(
        metadata=doc("registry name: fp32, fp16, int8_dynamic, int8_static_minmax, ...")
    )
    options: VariantOptions = field(metadata=doc("how the format was applied"))


@dataclass(frozen=True)
class HoldoutRef:
    object_name: str = field(metadata=doc("the holdout bundle in the models bucket (.npz: x, y)"))
    sha256: str = field(metadata=doc("hex digest of the bundle"))
    samples: int = field(metadata=doc("samples in the bundle"))
    central_accuracy: float = field(
        metadata=doc("this variant's accuracy on the bundle, on the gpu worker")
    )


@dataclass(frozen=True)
class UnsignedManifest:
    model_id: str = field(metadata=doc("the model this variant belongs to"))
    variant: VariantSpec = field(metadata=doc("format and options"))
    object_name: str = field(metadata=doc("the model file in the models bucket"))
    sha256: str = field(metadata=doc("hex digest of the model file"))
    size_bytes: int = field(metadata=doc("model file size"))
    opset: int = field(metadata=doc("default-domain ONNX opset the model imports"))
    inputs: list[TensorSpec] = field(metadata=doc("graph inputs"))
    outputs: list[TensorSpec] = field(metadata=doc("graph outputs"))
    central_accuracy: float = field(metadata=doc("accuracy on the test split, on the gpu worker"))
    holdout: HoldoutRef = field(metadata=doc("samples to re-check accuracy with on a device"))
    created_at: str = field(metadata=doc("ISO 8601 UTC time the variant was built"))
