"""Distillation step: train a student on the teacher's softened outputs (Hinton et al. 2015),
optionally with a FitNets hint between one teacher layer and one student layer."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeforge_gpu.data import Dataset
from edgeforge_gpu.errors import ConfigError, ModelError
from edgeforge_gpu.fields import doc
from edgeforge_gpu.training.config import TrainingConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeforge_gpu.training.loop import FitResult, ProgressFn


@dataclass(frozen=True)
class HintConfig:
    teacher_layer: str = field(
        metadata=doc("teacher module name, e.g. layer2 (see model.named_modules())")
    )
    student_layer: str = field(metadata=doc("student module name, e.g. features.block3"))
    weight: float = field(
        default=1.0, metadata=doc("weight of the feature loss next to the distillation loss")
    )


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = field(
        default=4.0,
        metadata=doc(
            "T: softens both distributions; higher shows more of the "
            "teacher's ranking of the wrong classes"
        ),
    )
    alpha: float = field(
        default=0.9, metadata=doc("weight of the soft (teacher) term; 1 - alpha weighs the labels")
    )
    training: TrainingConfig = field(
        default_factory=lambda: TrainingConfig(epochs=10, learning_rate=0.05),
        metadata=doc("optimisation settings"),
    )
    hint: HintConfig | None = field(
        default=None,
        metadata=doc("FitNets feature hint (PyTorch teachers only); null for logits alone"),
    )

    def check(self) -> None:
        self.training.check()
        if self.temperature <= 0:
            raise ConfigError(f"temperature={self.temperature}", "Use a positive temperature")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha={self.alpha}", "Use a weight between 0 and 1")


@dataclass(frozen=True)
class Student:
    model: "nn.Module"
    fit: "FitResult"
    test_logits: np.ndarray
    test_accuracy: float
    parameters: int


def _teacher_logits(
    teacher: "nn.Module | np.ndarray",
    config: DistillConfig,
    dataset: Dataset,
    device: "torch.device",
) -> "Callable[[torch.Tensor, torch.Tensor], torch.Tensor]":
    """The teacher's logits for a batch (images, their indices in the training split)."""
    import torch

    from edgeforge_gpu.training.loop import predict_logits

    if isinstance(teacher, np.ndarray):
        if config.hint is not None or config.training.augment:
            raise ConfigError(
                "an ONNX teacher's logits are cached for the unaugmented training images, so it "
                "can give neither feature hints nor logits for augmented ones",
                "Set hint to null and augment to false, or use a PyTorch teacher",
            )
        if teacher.shape != (len(dataset.train), dataset.num_classes):
            raise ModelError(
                f"the cached teacher logits have shape {teacher.shape}; the training split needs "
                f"({len(dataset.train)}, {dataset.num_classes})",
                "Prepare the teacher again for this data set",
            )
        cached = torch.from_numpy(teacher).to(device)
        return lambda x, index: cached[index]
    teacher.to(device).to(memory_format=torch.channels_last).eval()
    if config.hint is None and not config.training.augment:
        # The teacher sees exactly the same images every epoch: one pass instead of one per epoch.
        cached = predict_logits(teacher, dataset.train.x, device).to(device)
        return lambda x, index: cached[index]
    return lambda x, index: teacher(x)


def run(
    architecture: str,
    config: DistillConfig,
    dataset: Dataset,
    teacher: "nn.Module | np.ndarray",
    work_dir: Path,
    fingerprint: str,
    progress: "ProgressFn",
) -> Student:
    """Distills `teacher` (a PyTorch model, or an ONNX teacher's cached train logits) into a new
    `architecture`; checkpoints go to `work_dir`, resumed when `fingerprint` matches."""
    config.check()
    import torch

    from edgeforge_gpu.models import build_model, count_parameters
    from edgeforge_gpu.training.device import seed_everything, training_device
    from edgeforge_gpu.training.loop import accuracy, fit, predict_logits
    from edgeforge_gpu.training.objectives import Distillation, FeatureHint

    device = training_device()
    teacher_logits = _teacher_logits(teacher, config, dataset, device)
    seed_everything(config.training.seed)
    student = build_model(architecture, dataset.input_shape[0], dataset.num_classes).to(device)
    hint = None
    if config.hint is not None:
        assert not isinstance(teacher, np.ndarray), "rejected by _teacher_logits"
        probe = torch.from_numpy(dataset.train.x[:2]).to(device)
        hint = FeatureHint(
            teacher, student, config.hint.teacher_layer, config.hint.student_layer, probe
        )
    objective = Distillation(
        teacher_logits,
        config.temperature,
        config.alpha,
        hint,
        config.hint.weight if config.hint else 0.0,
    )
    result = fit(
        student,
        objective,
        dataset.train,
        dataset.validation,
        config.training,
        device,
        work_dir / "distill-checkpoint.pt",
        fingerprint,
        progress,
    )
    test_logits = predict_logits(student, dataset.test.x, device)
    return Student(
        model=student,
        fit=result,
        test_logits=test_logits.numpy(),
        test_accuracy=accuracy(test_logits, dataset.test.y),
        parameters=count_parameters(student),
    )
