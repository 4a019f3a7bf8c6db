"""Static QDQ quantization: activation ranges calibrated ahead of time, QuantizeLinear /
DequantizeLinear pairs around each quantized op (int8, or 16-bit activations for A16W8)."""

from dataclasses import dataclass, field
from pathlib import Path

from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from edgeforge_gpu.errors import unknown_name
from edgeforge_gpu.fields import doc
from edgeforge_gpu.quantization.calibration import ArrayCalibrationReader
from edgeforge_gpu.quantization.common import PassInputs

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
QUANT_TYPES = {
    "int8": QuantType.QInt8,
    "uint8": QuantType.QUInt8,
    "int16": QuantType.QInt16,
    "uint16": QuantType.QUInt16,
}


@dataclass(frozen=True)
class StaticQdqConfig:
    calibration: str = field(default="minmax", metadata=doc("minmax | entropy | percentile"))
    percentile: float = field(
        default=99.999, metadata=doc("percentile calibration: the share of values kept in range")
    )
    per_channel: bool = field(default=True, metadata=doc("one weight scale per output channel"))
    reduce_range: bool = field(
        default=False,
        metadata=doc("7-bit weights: x86 without VNNI can saturate u8 x s8 products otherwise"),
    )
    activation_type: str = field(default="uint8", metadata=doc("uint8 | int8 | uint16 | int16"))
    weight_type: str = field(default="int8", metadata=doc("int8 | uint8"))


def run(inputs: PassInputs, target: Path, config: StaticQdqConfig) -> None:
    import onnx

    if config.calibration not in CALIBRATION_METHODS:
        raise unknown_name("calibration method", config.calibration, CALIBRATION_METHODS)
    sixteen_bit = config.activation_type.endswith("16")
    input_name = onnx.load(str(inputs.prepared), load_external_data=False).graph.input[0].name
    quantize_static(
        inputs.prepared,
        target,
        ArrayCalibrationReader(inputs.calibration, input_name),
        quant_format=QuantFormat.QDQ,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=QUANT_TYPES[config.activation_type],
        weight_type=QUANT_TYPES[config.weight_type],
        nodes_to_exclude=list(inputs.float_nodes),
        calibrate_method=CALIBRATION_METHODS[config.calibration],
        # The accuracy fallback rebuilds the variant with other float nodes: the ranges of the
        # first calibration are reused instead of recomputed.
        calibration_cache_path=inputs.scratch / f"calibration-{config.calibration}.json",
        extra_options={
            "CalibPercentile": config.percentile,
            # 16-bit QuantizeLinear/DequantizeLinear exist only as ONNX Runtime contrib ops
            # below opset 21.
            "UseQDQContribOps": sixteen_bit,
        },
    )
