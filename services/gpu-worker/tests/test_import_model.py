"""Bring your own model: an ONNX classifier trained elsewhere becomes the fp32 student, on labelled
or unlabelled data, and build_variants takes it as it takes a distilled one."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgeforge_gpu.data import MODEL_LABELS, Dataset, DatasetSpec, load_dataset
from edgeforge_gpu.errors import ConfigError, DatasetError, ModelError
from edgeforge_gpu.evaluation.runtime import accuracy, onnx_logits
from edgeforge_gpu.models import build_model
from edgeforge_gpu.settings import Settings
from edgeforge_gpu.steps import import_model as import_step
from edgeforge_gpu.steps.export import ExportConfig
from edgeforge_gpu.steps.export import run as export
from edgeforge_gpu.training.config import TrainingConfig
from edgeforge_gpu.training.supervised import train_from_scratch
from tests.test_activities import FAST_VARIANTS, Gpu, _failure

DIGITS = {"source": "digits"}


@pytest.fixture(scope="module")
def trained_onnx(digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small_cnn trained briefly on digits and exported: a model "trained elsewhere"."""
    folder = tmp_path_factory.mktemp("byom")
    model, _ = train_from_scratch(
        "small_cnn",
        digits,
        TrainingConfig(epochs=4, learning_rate=0.05),
        torch.device("cpu"),
        folder / "checkpoint.pt",
        "byom",
        lambda _: None,
    )
    return export(model, digits.test.x, folder / "model.onnx", ExportConfig()).path


@pytest.fixture()
def unlabelled_digits(digits: Dataset, tmp_path: Path) -> DatasetSpec:
    path = tmp_path / "unlabelled.npz"
    np.savez(path, x=np.concatenate([digits.train.x, digits.validation.x, digits.test.x]))
    return DatasetSpec("npz", path=str(path))


def test_a_labelled_data_set_keeps_its_labels(trained_onnx, digits, tmp_path):
    imported = import_step.run(trained_onnx, DatasetSpec("digits"), tmp_path)
    assert imported.dataset.labels == "dataset"
    assert imported.dataset.fingerprint == digits.fingerprint
    assert imported.path == tmp_path / "fp32.onnx" and imported.path.is_file()
    assert 200_000 < imported.parameters < 300_000  # small_cnn's 0.25M weights, BN included


def test_unlabelled_images_are_labelled_with_the_models_predictions(
    trained_onnx, unlabelled_digits, tmp_path
):
    imported = import_step.run(trained_onnx, unlabelled_digits, tmp_path)
    data = imported.dataset
    assert data.labels == MODEL_LABELS and data.num_classes == 10
    for split in (data.train, data.validation, data.test, data.holdout):
        assert accuracy(onnx_logits(trained_onnx, split.x), split.y) == 1.0
    # Labelling again (as build_variants does) gives the very same splits.
    again = load_dataset(unlabelled_digits, lambda x: onnx_logits(imported.path, x))
    assert again.fingerprint == data.fingerprint


def test_unlabelled_images_still_need_labels_everywhere_else(unlabelled_digits):
    with pytest.raises(DatasetError, match="only import_model takes images without labels"):
        load_dataset(unlabelled_digits)


def test_images_of_another_shape_are_a_config_error_naming_both(trained_onnx, tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros((300, 12, 12), np.uint8), y=np.arange(300) % 10)
    with pytest.raises(ConfigError) as error:
        import_step.run(trained_onnx, DatasetSpec("npz", path=str(path)), tmp_path / "work")
    assert "(N, 1, 8, 8)" in error.value.problem and "(N, 1, 12, 12)" in error.value.problem
    assert "image_size" in error.value.fix


class ChannelsLast(torch.nn.Module):
    """A model that takes (N, H, W, C), as TensorFlow exports do."""

    def __init__(self) -> None:
        super().__init__()
        self.model = build_model("small_cnn", 1, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def test_a_channels_last_model_is_called_so(digits, tmp_path):
    nhwc = digits.test.x.transpose(0, 2, 3, 1)
    path = export(ChannelsLast().eval(), nhwc, tmp_path / "nhwc.onnx", ExportConfig()).path
    with pytest.raises(ConfigError) as error:
        import_step.run(path, DatasetSpec("digits"), tmp_path / "work")
    assert "(N, 8, 8, 1) but the data set's are (N, 1, 8, 8)" in error.value.problem
    assert "channels-last" in error.value.problem


def test_a_file_that_is_not_onnx_is_a_model_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("not a model")
    with pytest.raises(ModelError) as error:
        import_step.run(path, DatasetSpec("digits"), tmp_path / "work")
    assert "model.onnx is not a valid ONNX model" in error.value.problem
    assert "torch.onnx.export" in error.value.fix


def test_a_model_for_other_classes_is_a_model_error(trained_onnx, tmp_path):
    path = tmp_path / "four.npz"
    np.savez(path, x=np.zeros((100, 8, 8), np.float32), y=np.arange(100) % 4)
    with pytest.raises(ModelError, match="outputs 10 classes but the data set has 4"):
        import_step.run(trained_onnx, DatasetSpec("npz", path=str(path)), tmp_path / "work")


@pytest.fixture(scope="module")
def gpu(
    temporal_bin: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gpu]:
    harness = Gpu(temporal_bin, Settings(nats_url, tmp_path_factory.mktemp("gpu-work")))
    try:
        yield harness
    finally:
        harness.close()


def _variants(gpu: Gpu, rollout: str, dataset: dict, student: dict[str, Any]) -> dict[str, Any]:
    return gpu.call(
        "build_variants",
        {
            "rollout_id": rollout,
            "dataset": dataset,
            "student": student,
            "formats": ["fp32", "int8_static_minmax"],
            "variants": FAST_VARIANTS,
        },
    )


@pytest.mark.slow
def test_import_model_returns_a_student_that_build_variants_takes(gpu, trained_onnx, digits):
    student = gpu.call(
        "import_model",
        {"rollout_id": "byom-1", "dataset": DIGITS, "model": {"path": str(trained_onnx)}},
    )
    assert student["architecture"] == "imported"
    assert student["onnx_model"]["name"] == "byom-1/student/fp32.onnx"
    assert student["holdout"]["name"] == "byom-1/holdout.npz" and student["holdout_samples"] == 256
    assert student["dataset"]["labels"] == "dataset"
    expected = accuracy(onnx_logits(trained_onnx, digits.test.x), digits.test.y)
    assert student["test_accuracy"] == pytest.approx(expected) and expected > 0.8
    assert student["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    for absent in (
        "state_dict",
        "training",
        "parity_max_abs_diff",
        "teacher_test_accuracy",
        "agreement_with_teacher",
    ):
        assert student[absent] is None, absent

    result = _variants(gpu, "byom-1", DIGITS, student)
    assert result["model_id"] == "byom-1-imported"
    fp32, int8 = result["variants"]
    assert fp32["status"] == "accepted" and fp32["metrics"]["test_accuracy"] == pytest.approx(
        expected
    )
    assert int8["status"] == "accepted", int8["reason"]
    assert int8["manifest"]["holdout"]["object_name"] == "byom-1/holdout.npz"


@pytest.mark.slow
def test_without_labels_accuracy_is_agreement_with_the_fp32_model(
    gpu, trained_onnx, unlabelled_digits
):
    dataset = {"source": "npz", "path": unlabelled_digits.path}
    student = gpu.call(
        "import_model",
        {
            "rollout_id": "byom-2",
            "dataset": dataset,
            "model": {"path": str(trained_onnx)},
            "architecture_label": "customer_net",
        },
    )
    assert student["dataset"]["labels"] == "model_predictions"
    assert student["validation_accuracy"] == 1.0 and student["test_accuracy"] == 1.0

    result = _variants(gpu, "byom-2", dataset, student)
    assert result["model_id"] == "byom-2-customer_net"
    fp32, int8 = result["variants"]
    assert fp32["metrics"]["test_accuracy"] == 1.0 and fp32["metrics"]["holdout_accuracy"] == 1.0
    assert int8["metrics"]["test_accuracy"] == pytest.approx(int8["metrics"]["agreement"])


@pytest.mark.slow
def test_a_file_that_is_not_onnx_fails_at_once(gpu, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00" * 64)
    error = _failure(
        gpu,
        "import_model",
        {"rollout_id": "byom-3", "dataset": DIGITS, "model": {"path": str(path)}},
    )
    assert error.type == "ModelError" and error.non_retryable
    assert "is not a valid ONNX model" in error.message
