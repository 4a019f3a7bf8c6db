"""Variants step: build one variant format from the fp32 student, measure it, and when it misses
the accuracy budget keep its most sensitive nodes in float until it meets it (or give up)."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeforge_gpu.data import Dataset
from edgeforge_gpu.errors import ConfigError
from edgeforge_gpu.evaluation.model_facts import ModelFacts
from edgeforge_gpu.evaluation.runtime import Latency
from edgeforge_gpu.fields import doc
from edgeforge_gpu.manifest import VariantOptions

ACCEPTED, REJECTED, NOT_APPLICABLE = "accepted", "rejected", "not_applicable"


@dataclass(frozen=True)
class VariantsConfig:
    max_accuracy_drop: float = field(
        default=0.01,
        metadata=doc("largest test-accuracy loss against the fp32 student (0.01 = 1 point)"),
    )
    fallback: bool = field(
        default=True,
        metadata=doc("when a variant misses the budget, keep its most sensitive nodes in float"),
    )
    max_float_fraction: float = field(
        default=0.5,
        metadata=doc("fallback: at most this share of the weight-bearing nodes stays in float"),
    )
    sensitivity_samples: int = field(
        default=128, metadata=doc("validation images the sensitivity analysis runs on")
    )
    latency_threads: int = field(
        default=1, metadata=doc("intra-op threads for the reference latency")
    )
    latency_runs: int = field(
        default=100, metadata=doc("timed batch-1 runs; the median is reported")
    )
    latency_warmup: int = field(default=10, metadata=doc("untimed runs first"))

    def check(self) -> None:
        if not 0 <= self.max_accuracy_drop < 1:
            raise ConfigError(f"max_accuracy_drop={self.max_accuracy_drop}", "Use 0 to 1")
        if not 0 < self.max_float_fraction <= 1:
            raise ConfigError(f"max_float_fraction={self.max_float_fraction}", "Use (0, 1]")
        if self.latency_runs < 2 or self.latency_threads < 1 or self.sensitivity_samples < 1:
            raise ConfigError(
                "latency_runs < 2, latency_threads < 1 or sensitivity_samples < 1",
                "Use at least 2 timed runs, 1 thread and 1 sample",
            )


@dataclass(frozen=True)
class Reference:
    """The fp32 student, evaluated once for every variant to be compared with."""

    exported: Path
    prepared: Path
    validation_logits: np.ndarray
    test_logits: np.ndarray
    size_bytes: int

    def validation_accuracy(self, dataset: Dataset) -> float:
        return float((self.validation_logits.argmax(1) == dataset.validation.y).mean())

    def test_accuracy(self, dataset: Dataset) -> float:
        return float((self.test_logits.argmax(1) == dataset.test.y).mean())


@dataclass(frozen=True)
class BuiltVariant:
    format: str
    status: str
    """accepted | rejected (over the accuracy budget) | not_applicable (nothing to quantize)."""
    reason: str
    options: VariantOptions
    path: Path | None
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    holdout_accuracy: float | None = None
    agreement: float | None = None
    """Top-1 agreement with the fp32 student on the test split."""
    facts: ModelFacts | None = None
    latency: Latency | None = None


def prepare_reference(exported: Path, dataset: Dataset, work_dir: Path) -> Reference:
    from onnxruntime.quantization import quant_pre_process

    from edgeforge_gpu.evaluation.runtime import onnx_logits

    work_dir.mkdir(parents=True, exist_ok=True)
    prepared = work_dir / "fp32.prepared.onnx"
    # Shape inference and graph optimisation (BatchNorm folded into Conv), which ORT's
    # quantizers expect before they run.
    quant_pre_process(str(exported), str(prepared))
    return Reference(
        exported=exported,
        prepared=prepared,
        validation_logits=onnx_logits(exported, dataset.validation.x),
        test_logits=onnx_logits(exported, dataset.test.x),
        size_bytes=exported.stat().st_size,
    )


def _doubling(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit`: few float nodes first, since each costs speed."""
    counts, k = [], 1
    while k < limit:
        counts.append(k)
        k *= 2
    return [*counts, limit]


def run(
    name: str,
    reference: Reference,
    dataset: Dataset,
    config: VariantsConfig,
    work_dir: Path,
    progress: Callable[[str], None],
) -> BuiltVariant:
    """Builds format `name` into `work_dir`; `progress` hears about each (re)build."""
    from edgeforge_gpu.evaluation.runtime import accuracy, onnx_logits
    from edgeforge_gpu.quantization.common import NotApplicable, PassInputs
    from edgeforge_gpu.quantization.formats import variant_format
    from edgeforge_gpu.quantization.sensitivity import rank_nodes

    config.check()
    fmt = variant_format(name)
    scratch = work_dir / name
    scratch.mkdir(parents=True, exist_ok=True)
    target = work_dir / f"{name}.onnx"
    inputs = PassInputs(
        exported=reference.exported,
        prepared=reference.prepared,
        calibration=dataset.calibration.x,
        float_nodes=(),
        scratch=scratch,
    )
    progress(f"building {name}")
    try:
        fmt.build(inputs, target)
    except NotApplicable as reason:
        return BuiltVariant(name, NOT_APPLICABLE, str(reason), fmt.options, None)

    budget = config.max_accuracy_drop + 1e-9  # accuracies are ratios of counts; allow rounding
    reference_validation = reference.validation_accuracy(dataset)
    validation = accuracy(onnx_logits(target, dataset.validation.x), dataset.validation.y)
    float_nodes: list[str] = []
    fallback_note = ""
    if config.fallback and fmt.fallback and reference_validation - validation > budget:
        ranked = rank_nodes(
            reference.prepared,
            target,
            dataset.validation.x[: config.sensitivity_samples],
            scratch,
        )
        weight_nodes = {r.node for r in ranked}
        for count in _doubling(len(ranked)):
            chosen = sorted({n for r in ranked[:count] for n in r.group})
            if len(weight_nodes.intersection(chosen)) > config.max_float_fraction * len(ranked):
                break
            float_nodes = chosen
            progress(f"rebuilding {name} with {len(float_nodes)} float node(s)")
            fmt.build(replace(inputs, float_nodes=tuple(float_nodes)), target)
            validation = accuracy(onnx_logits(target, dataset.validation.x), dataset.validation.y)
            if reference_validation - validation <= budget:
                break
        kept = len(weight_nodes.intersection(float_nodes))
        fallback_note = f"; {kept} of {len(ranked)} weight-bearing nodes kept in float"

    test_logits = onnx_logits(target, dataset.test.x)
    test = accuracy(test_logits, dataset.test.y)
    drop = reference.test_accuracy(dataset) - test
    if drop <= budget:
        status, reason = ACCEPTED, f"test accuracy {test:.4f}, {-drop * 100:+.2f} points vs fp32"
    else:
        status, reason = (
            REJECTED,
            f"loses {drop * 100:.2f} points of test accuracy, over the budget of "
            f"{config.max_accuracy_drop * 100:.2f}",
        )
    return _measured(
        BuiltVariant(
            format=name,
            status=status,
            reason=reason + fallback_note,
            options=replace(fmt.options, float_nodes=float_nodes),
            path=target,
            validation_accuracy=validation,
        ),
        test_logits,
        reference,
        dataset,
        config,
    )


def measure_fp32(
    path: Path, reason: str, reference: Reference, dataset: Dataset, config: VariantsConfig
) -> BuiltVariant:
    """Another fp32 model (the teacher) measured like a variant, against the same student, and
    accepted as it is: it is a reference to compare with, not a candidate held to the budget."""
    from edgeforge_gpu.evaluation.runtime import accuracy, onnx_logits
    from edgeforge_gpu.quantization.formats import variant_format

    validation = accuracy(onnx_logits(path, dataset.validation.x), dataset.validation.y)
    built = BuiltVariant(
        format="fp32",
        status=ACCEPTED,
        reason=reason,
        options=variant_format("fp32").options,
        path=path,
        validation_accuracy=validation,
    )
    return _measured(built, onnx_logits(path, dataset.test.x), reference, dataset, config)


def _measured(
    built: BuiltVariant,
    test_logits: np.ndarray,
    reference: Reference,
    dataset: Dataset,
    config: VariantsConfig,
) -> BuiltVariant:
    """`built` with its test and holdout accuracy, agreement, model facts and latency."""
    from edgeforge_gpu.evaluation.model_facts import describe_model
    from edgeforge_gpu.evaluation.runtime import accuracy, agreement, onnx_logits, reference_latency

    assert built.path is not None
    return replace(
        built,
        test_accuracy=accuracy(test_logits, dataset.test.y),
        holdout_accuracy=accuracy(onnx_logits(built.path, dataset.holdout.x), dataset.holdout.y),
        agreement=agreement(test_logits, reference.test_logits),
        facts=describe_model(built.path),
        latency=reference_latency(
            built.path,
            dataset.test.x[:1],
            config.latency_threads,
            config.latency_warmup,
            config.latency_runs,
        ),
    )
