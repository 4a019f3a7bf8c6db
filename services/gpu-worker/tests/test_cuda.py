"""On a CUDA GPU: the same code trains with fp16 autocast and a gradient scaler, checkpoints the
scaler, and exports a model that matches PyTorch on the CPU."""

import pytest
import torch

from edgeforge_gpu.steps import distill, export
from edgeforge_gpu.training.config import TrainingConfig
from edgeforge_gpu.training.device import training_device
from edgeforge_gpu.training.supervised import train_from_scratch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def quiet(progress: object) -> None:
    """Progress reports are for heartbeats; tests do not need them."""


def test_distillation_runs_in_mixed_precision_on_the_gpu(digits, tmp_path):
    device = training_device()
    assert device.type == "cuda"
    teacher, _ = train_from_scratch(
        "resnet10_w32",
        digits,
        TrainingConfig(epochs=4, learning_rate=0.05),
        device,
        tmp_path / "teacher.pt",
        "teacher",
        quiet,
    )
    config = distill.DistillConfig(
        training=TrainingConfig(epochs=4, learning_rate=0.05, augment=True),
        hint=distill.HintConfig(teacher_layer="layer2", student_layer="features.block3"),
    )
    student = distill.run("small_cnn", config, digits, teacher, tmp_path, "cuda", quiet)
    assert next(student.model.parameters()).device.type == "cuda"
    assert student.test_accuracy > 0.8
    saved = torch.load(tmp_path / "distill-checkpoint.pt", weights_only=False)
    assert saved["scaler"]["scale"] > 0  # the GradScaler was on, and its state is checkpointed
    exported = export.run(student.model, digits.test.x, tmp_path / "s.onnx", export.ExportConfig())
    assert exported.parity_max_abs_diff < 1e-4
