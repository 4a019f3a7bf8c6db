"""Distillation: it must beat the same student trained on labels alone, from PyTorch and from
ONNX teachers, with or without a feature hint."""

import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeforge_gpu.data import DatasetSpec, load_dataset
from edgeforge_gpu.errors import ConfigError, ModelError
from edgeforge_gpu.models import build_model
from edgeforge_gpu.steps import distill, export, teacher
from edgeforge_gpu.training.config import TrainingConfig
from edgeforge_gpu.training.loop import accuracy, predict_logits
from edgeforge_gpu.training.supervised import train_from_scratch

CPU = torch.device("cpu")


def quiet(progress: object) -> None:
    """Progress reports are for heartbeats; tests do not need them."""


@pytest.fixture(scope="module")
def trained_teacher(digits, tmp_path_factory):
    """resnet10_w32 on the full digits training split (96-97% test accuracy)."""
    model, _ = train_from_scratch(
        "resnet10_w32",
        digits,
        TrainingConfig(epochs=5, learning_rate=0.05),
        CPU,
        tmp_path_factory.mktemp("teacher") / "checkpoint.pt",
        "teacher",
        quiet,
    )
    return model


@pytest.mark.slow
def test_distillation_beats_the_student_trained_alone(trained_teacher, tmp_path):
    """150 labelled images, 10 epochs: the teacher's soft targets carry what the labels of so few
    samples cannot. Averaged over three seeds; a broken loss (wrong KL direction, missing T^2,
    swapped alpha) loses this margin."""
    few = load_dataset(DatasetSpec("digits", max_train_samples=150))
    distilled, alone = [], []
    for seed in range(3):
        config = TrainingConfig(epochs=10, learning_rate=0.05, batch_size=32, seed=seed)
        student = distill.run(
            "small_cnn",
            distill.DistillConfig(temperature=4.0, alpha=0.9, training=config),
            few,
            trained_teacher,
            tmp_path / f"distilled-{seed}",
            "distilled",
            quiet,
        )
        distilled.append(student.test_accuracy)
        baseline, _ = train_from_scratch(
            "small_cnn", few, config, CPU, tmp_path / f"alone-{seed}.pt", "alone", quiet
        )
        alone.append(accuracy(predict_logits(baseline, few.test.x, CPU), few.test.y))
    gain = statistics.mean(distilled) - statistics.mean(alone)
    assert gain >= 0.005, f"distilled {distilled} vs alone {alone}"


def test_a_feature_hint_trains_a_regressor_between_the_chosen_layers(
    digits, trained_teacher, tmp_path
):
    config = distill.DistillConfig(
        training=TrainingConfig(epochs=2, learning_rate=0.05),
        hint=distill.HintConfig(teacher_layer="layer2", student_layer="features.block2"),
    )
    student = distill.run("small_cnn", config, digits, trained_teacher, tmp_path, "hint", quiet)
    assert student.test_accuracy > 0.5
    saved = torch.load(tmp_path / "distill-checkpoint.pt", weights_only=False)
    # layer2 of the teacher has 64 channels, block2 of the student 32: a 1x1 map between them.
    assert saved["extra"][0]["weight"].shape == (64, 32, 1, 1)

    bad = distill.DistillConfig(
        training=TrainingConfig(epochs=1),
        hint=distill.HintConfig(teacher_layer="layer9", student_layer="features.block2"),
    )
    with pytest.raises(ConfigError, match=r"the teacher has no layer 'layer9'.*layer2"):
        distill.run("small_cnn", bad, digits, trained_teacher, tmp_path / "bad", "bad", quiet)


@pytest.fixture(scope="module")
def onnx_teacher(trained_teacher, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx-teacher") / "teacher.onnx"
    export.run(trained_teacher, digits.test.x, path, export.ExportConfig())
    return path


def test_an_onnx_teacher_is_distilled_from_its_cached_logits(digits, onnx_teacher, tmp_path):
    prepared = teacher.run(
        teacher.TeacherConfig(source="onnx", file=teacher.FileRef(path=str(onnx_teacher))),
        digits,
        onnx_teacher,
        tmp_path / "teacher",
        "onnx",
        quiet,
    )
    assert prepared.kind == "onnx" and prepared.test_accuracy > 0.9
    logits = np.load(prepared.train_logits_path)
    assert logits.shape == (len(digits.train), 10)
    config = distill.DistillConfig(training=TrainingConfig(epochs=4, learning_rate=0.05))
    student = distill.run("small_cnn", config, digits, logits, tmp_path / "s", "onnx", quiet)
    assert student.test_accuracy > 0.85

    with pytest.raises(ConfigError, match="neither feature hints"):
        augmented = distill.DistillConfig(training=TrainingConfig(epochs=1, augment=True))
        distill.run("small_cnn", augmented, digits, logits, tmp_path / "a", "a", quiet)


def test_onnx_teachers_that_do_not_fit_the_data_are_refused(digits, tmp_path):
    def exported(in_channels: int, classes: int, size: int) -> str:
        path = tmp_path / f"teacher-{in_channels}-{classes}-{size}.onnx"
        model = build_model("small_cnn", in_channels, classes).eval()
        images = np.random.default_rng(0).random((2, in_channels, size, size), np.float32)
        export.run(model, images, path, export.ExportConfig())
        return str(path)

    def prepare(path: str) -> None:
        config = teacher.TeacherConfig(source="onnx", file=teacher.FileRef(path=path))
        teacher.run(config, digits, Path(path), tmp_path / "work", "x", quiet)

    with pytest.raises(ModelError, match=r"outputs shape \[2, 5\].*10 classes"):
        prepare(exported(1, 5, 8))
    with pytest.raises(ModelError, match=r"images of shape \[3, 8, 8\].*\[1, 8, 8\]"):
        prepare(exported(3, 10, 8))
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        prepare(str(tmp_path / "garbage.onnx"))
