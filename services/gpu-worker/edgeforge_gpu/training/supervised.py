"""Training a classifier from scratch on the labels alone (a teacher, or a student baseline)."""

from pathlib import Path

import torch
from torch import nn

from edgeforge_gpu.data import Dataset
from edgeforge_gpu.models import build_model
from edgeforge_gpu.training.config import TrainingConfig
from edgeforge_gpu.training.device import seed_everything
from edgeforge_gpu.training.loop import FitResult, ProgressFn, fit
from edgeforge_gpu.training.objectives import CrossEntropy


def train_from_scratch(
    architecture: str,
    dataset: Dataset,
    config: TrainingConfig,
    device: torch.device,
    checkpoint: Path,
    fingerprint: str,
    progress: ProgressFn,
) -> tuple[nn.Module, FitResult]:
    config.check()
    seed_everything(config.seed)  # the initial weights come from the global RNG
    model = build_model(architecture, dataset.input_shape[0], dataset.num_classes)
    result = fit(
        model,
        CrossEntropy(),
        dataset.train,
        dataset.validation,
        config,
        device,
        checkpoint,
        fingerprint,
        progress,
    )
    return model, result
