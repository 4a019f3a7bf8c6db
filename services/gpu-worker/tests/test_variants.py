"""Quantized variants: each loads in ONNX Runtime and meets its accuracy budget, or is rejected
(or found not applicable) with the reason; the fallback rescues a variant by keeping its most
sensitive nodes in float."""

import onnx
import pytest
import torch
from torch import nn

from edgeforge_gpu.errors import ConfigError
from edgeforge_gpu.evaluation.runtime import open_session
from edgeforge_gpu.quantization.formats import FORMATS, variant_format
from edgeforge_gpu.quantization.sensitivity import rank_nodes
from edgeforge_gpu.steps import export, variants
from edgeforge_gpu.training.config import TrainingConfig
from edgeforge_gpu.training.supervised import train_from_scratch

FAST = variants.VariantsConfig(latency_runs=20, latency_warmup=2)
# Op types that show each format really is what its name says.
SIGNATURE_OPS = {
    "fp32": "Conv",
    "fp16": "Cast",
    "int8_dynamic": "ConvInteger",
    "int8_static_minmax": "QuantizeLinear",
    "int8_static_entropy": "QuantizeLinear",
    "int8_static_percentile": "QuantizeLinear",
    "int8_static_reduce_range": "QuantizeLinear",
    "a16w8": "com.microsoft.QuantizeLinear",
    "int4_weight_only": "com.microsoft.MatMulNBits",
}


def quiet(message: object) -> None:
    """Progress reports are for heartbeats; tests do not need them."""


@pytest.fixture(scope="module")
def student(digits, tmp_path_factory):
    model, _ = train_from_scratch(
        "small_cnn",
        digits,
        TrainingConfig(epochs=8, learning_rate=0.05),
        torch.device("cpu"),
        tmp_path_factory.mktemp("student") / "checkpoint.pt",
        "student",
        quiet,
    )
    return model


@pytest.fixture(scope="module")
def reference(student, digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    exported = export.run(student, digits.test.x, folder / "fp32.onnx", export.ExportConfig())
    return variants.prepare_reference(exported.path, digits, folder)


def test_the_registry_covers_every_format():
    assert set(FORMATS) == set(SIGNATURE_OPS)
    with pytest.raises(ConfigError, match=r"unknown variant format 'int3'.*a16w8, fp16, fp32"):
        variant_format("int3")


@pytest.mark.parametrize("name", sorted(SIGNATURE_OPS))
def test_every_variant_loads_and_stays_within_its_budget(name, reference, digits, tmp_path):
    built = variants.run(name, reference, digits, FAST, tmp_path, quiet)
    assert built.status == variants.ACCEPTED, built.reason
    assert built.path is not None and built.facts is not None and built.latency is not None
    session = open_session(built.path)  # loads in ONNX Runtime, float32 in and out
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in session.get_outputs()] == ["tensor(float)"]
    assert SIGNATURE_OPS[name] in built.facts.op_counts
    assert reference.test_accuracy(digits) - built.test_accuracy <= 0.01
    assert built.agreement >= 0.95 and built.holdout_accuracy >= 0.9
    assert built.latency.median_ms > 0 and built.latency.threads == 1
    ratio = built.facts.size_bytes / reference.size_bytes
    expected_ratio = {"fp16": 0.55, "int8_dynamic": 0.3, "a16w8": 0.3}.get(name, 1.01)
    if name.startswith("int8_static"):
        expected_ratio = 0.3
    assert ratio <= expected_ratio, f"{name} is {ratio:.2f} of fp32"


def test_static_int8_uses_per_channel_weights_and_reduce_range_seven_bits(
    reference, digits, tmp_path
):
    def weight_scales(name: str) -> list[onnx.TensorProto]:
        built = variants.run(name, reference, digits, FAST, tmp_path / name, quiet)
        model = onnx.load(str(built.path))
        return [
            i for i in model.graph.initializer if i.name.endswith("_scale") and len(i.dims) == 1
        ]

    assert weight_scales("int8_static_minmax")  # one scale per output channel
    reduced = variants.run("int8_static_reduce_range", reference, digits, FAST, tmp_path, quiet)
    weights = [
        onnx.numpy_helper.to_array(i)
        for i in onnx.load(str(reduced.path)).graph.initializer
        if i.name.endswith("_quantized") and i.data_type == onnx.TensorProto.INT8
    ]
    assert weights and max(int(abs(w.astype(int)).max()) for w in weights) <= 64


def test_int4_is_not_applicable_without_matmul_or_gemm_weights(digits, tmp_path):
    conv_only = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 10, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()
    exported = export.run(conv_only, digits.test.x, tmp_path / "conv.onnx", export.ExportConfig())
    reference = variants.prepare_reference(exported.path, digits, tmp_path)
    built = variants.run("int4_weight_only", reference, digits, FAST, tmp_path, quiet)
    assert built.status == variants.NOT_APPLICABLE
    assert "no MatMul or Gemm" in built.reason and built.path is None


@pytest.fixture(scope="module")
def outlier_reference(student, digits, tmp_path_factory):
    """The student with one channel of block2 scaled up 1000x and the next convolution's input
    scaled down to match: the same function, but a per-tensor int8 scale fitted to that channel
    rounds every other channel of the tensor to zero."""
    import copy

    model = copy.deepcopy(student)
    with torch.no_grad():
        norm, after = model.features.block2[1], model.features.block3[0]
        norm.weight[0] *= 1000
        norm.bias[0] *= 1000
        after.weight[:, 0] /= 1000
    folder = tmp_path_factory.mktemp("outlier")
    exported = export.run(model, digits.test.x, folder / "fp32.onnx", export.ExportConfig())
    return variants.prepare_reference(exported.path, digits, folder)


def test_a_variant_over_budget_is_rejected_with_the_reason(outlier_reference, digits, tmp_path):
    config = variants.VariantsConfig(fallback=False, latency_runs=5, latency_warmup=1)
    built = variants.run("int8_static_minmax", outlier_reference, digits, config, tmp_path, quiet)
    assert built.status == variants.REJECTED
    assert "over the budget of 1.00" in built.reason and built.options.float_nodes == []


def test_the_fallback_keeps_the_sensitive_nodes_in_float(outlier_reference, digits, tmp_path):
    ranked = rank_nodes(
        outlier_reference.prepared,
        variants.run(
            "int8_static_minmax",
            outlier_reference,
            digits,
            variants.VariantsConfig(fallback=False, latency_runs=5),
            tmp_path,
            quiet,
        ).path,
        digits.validation.x[:128],
        tmp_path,
    )
    assert ranked[0].node == "/features/block2/block2.0/Conv"
    assert "/features/block3/block3.0/Conv" in ranked[0].group  # its output's consumer

    built = variants.run("int8_static_minmax", outlier_reference, digits, FAST, tmp_path, quiet)
    assert built.status == variants.ACCEPTED, built.reason
    assert "/features/block2/block2.0/Conv" in built.options.float_nodes
    assert "kept in float" in built.reason
    assert outlier_reference.test_accuracy(digits) - built.test_accuracy <= 0.01
