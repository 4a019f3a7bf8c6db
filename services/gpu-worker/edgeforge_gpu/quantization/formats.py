"""Variant formats by name: which pass builds each one, with which config, and how the manifest
describes the result."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from edgeforge_gpu.errors import unknown_name
from edgeforge_gpu.manifest import VariantOptions
from edgeforge_gpu.quantization import fp16, fp32, int4_weight_only, int8_dynamic, static_qdq
from edgeforge_gpu.quantization.common import PassInputs


@dataclass(frozen=True)
class VariantFormat:
    name: str
    description: str
    build: Callable[[PassInputs, Path], None]
    options: VariantOptions
    fallback: bool
    """Whether the pass can keep chosen nodes in float (the accuracy fallback)."""


def _static(name: str, description: str, config: static_qdq.StaticQdqConfig) -> VariantFormat:
    return VariantFormat(
        name=name,
        description=description,
        build=partial(static_qdq.run, config=config),
        options=VariantOptions(
            weight_type=config.weight_type,
            activation_type=config.activation_type,
            calibration=config.calibration,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
        ),
        fallback=True,
    )


def _formats() -> dict[str, VariantFormat]:
    int4 = int4_weight_only.Int4WeightOnlyConfig()
    dynamic = int8_dynamic.Int8DynamicConfig()
    formats = [
        VariantFormat(
            "fp32",
            "the exported model",
            partial(fp32.run, config=fp32.Fp32Config()),
            VariantOptions(weight_type="float32", activation_type="float32"),
            fallback=False,
        ),
        VariantFormat(
            "fp16",
            "half precision, float32 inputs and outputs",
            partial(fp16.run, config=fp16.Fp16Config()),
            VariantOptions(weight_type="float16", activation_type="float16"),
            fallback=True,
        ),
        VariantFormat(
            "int8_dynamic",
            "int8 weights, activations quantized at run time",
            partial(int8_dynamic.run, config=dynamic),
            VariantOptions(
                weight_type="int8",
                activation_type="uint8",
                per_channel=dynamic.per_channel,
                reduce_range=dynamic.reduce_range,
            ),
            fallback=True,
        ),
        _static(
            "int8_static_minmax",
            "int8 QDQ, per-channel weights, min/max calibration",
            static_qdq.StaticQdqConfig(calibration="minmax"),
        ),
        _static(
            "int8_static_entropy",
            "int8 QDQ, per-channel weights, entropy (KL) calibration",
            static_qdq.StaticQdqConfig(calibration="entropy"),
        ),
        _static(
            "int8_static_percentile",
            "int8 QDQ, per-channel weights, 99.999th-percentile calibration",
            static_qdq.StaticQdqConfig(calibration="percentile"),
        ),
        _static(
            "int8_static_reduce_range",
            "int8 QDQ with 7-bit weights, for x86 without VNNI",
            static_qdq.StaticQdqConfig(calibration="minmax", reduce_range=True),
        ),
        _static(
            "a16w8",
            "16-bit activations, 8-bit weights (QDQ contrib ops)",
            static_qdq.StaticQdqConfig(
                calibration="minmax", activation_type="uint16", weight_type="uint8"
            ),
        ),
        VariantFormat(
            "int4_weight_only",
            "4-bit MatMul/Gemm weights (MatMulNBits), everything else float",
            partial(int4_weight_only.run, config=int4),
            VariantOptions(
                weight_type="int4", activation_type="float32", block_size=int4.block_size
            ),
            fallback=True,
        ),
    ]
    return {f.name: f for f in formats}


FORMATS = _formats()


def variant_format(name: str) -> VariantFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise unknown_name("variant format", name, FORMATS) from None
