"""Teacher step: train a teacher from scratch, load a user's checkpoint for a named architecture,
or take an ONNX model from any framework and cache its logits over the training split."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeforge_gpu.data import Dataset
from edgeforge_gpu.errors import ConfigError, ModelError
from edgeforge_gpu.fields import doc
from edgeforge_gpu.steps.export import ExportConfig
from edgeforge_gpu.training.config import TrainingConfig

if TYPE_CHECKING:
    from torch import nn

    from edgeforge_gpu.training.loop import FitResult, ProgressFn

SOURCES = ("train", "checkpoint", "onnx")


@dataclass(frozen=True)
class FileRef:
    """A file given by the user: on the gpu worker's disk, or in the models bucket."""

    path: str | None = field(default=None, metadata=doc("a path on the gpu worker"))
    object_name: str | None = field(
        default=None, metadata=doc("an object in the edgeforge_models bucket")
    )


@dataclass(frozen=True)
class TeacherConfig:
    source: str = field(
        default="train",
        metadata=doc(
            "train (from scratch) | checkpoint (a state_dict for `architecture`) | "
            "onnx (a model from any framework, run with ONNX Runtime)"
        ),
    )
    architecture: str = field(
        default="resnet10_w32", metadata=doc("train, checkpoint: the architecture's name")
    )
    file: FileRef | None = field(
        default=None, metadata=doc("checkpoint: the .pt state_dict; onnx: the .onnx model")
    )
    training: TrainingConfig = field(
        default_factory=lambda: TrainingConfig(epochs=10, learning_rate=0.1),
        metadata=doc("train: optimisation settings"),
    )
    export: ExportConfig = field(
        default_factory=ExportConfig, metadata=doc("PyTorch teachers: ONNX export")
    )

    def check(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"unknown teacher source {self.source!r}", f"Use one of {SOURCES}")
        if self.source != "train" and self.file is None:
            raise ConfigError(
                f"teacher source {self.source} needs a file", "Set TeacherConfig.file"
            )


@dataclass(frozen=True)
class Teacher:
    kind: str
    """pytorch (trained or loaded; can be distilled from online) | onnx (logits cached)."""
    architecture: str | None
    model: "nn.Module | None"
    onnx_path: Path
    """fp32 ONNX model: exported here, or the user's own."""
    state_dict_path: Path | None
    train_logits_path: Path | None
    """ONNX teachers: logits over the training split (.npy, float32)."""
    test_logits: np.ndarray
    validation_accuracy: float
    test_accuracy: float
    parameters: int | None
    fit: "FitResult | None"
    parity_max_abs_diff: float | None


def _read_state_dict(path: Path) -> dict:
    import torch

    try:
        # weights_only: a user's file must not be able to run code when unpickled.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(
            f"cannot read the checkpoint {path} ({type(err).__name__}: {err})",
            "Save it with torch.save(model.state_dict(), path)",
        ) from err
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict):
        raise ModelError(f"{path} holds a {type(loaded).__name__}, not a state_dict", "Save one")
    # Checkpoints saved from nn.DataParallel prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def load_pytorch_teacher(architecture: str, path: Path, dataset: Dataset) -> "nn.Module":
    """Builds `architecture` for the data set and loads the state_dict at `path` into it."""
    from torch import nn

    from edgeforge_gpu.models import build_model

    model = build_model(architecture, dataset.input_shape[0], dataset.num_classes)
    given = _read_state_dict(path)
    expected = model.state_dict()
    classifier = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    head = given.get(f"{classifier}.weight")
    if head is not None and head.shape[0] != dataset.num_classes:
        raise ModelError(
            f"the checkpoint's classifier ({classifier}) has {head.shape[0]} outputs but the data "
            f"set has {dataset.num_classes} classes",
            "Use a checkpoint trained on these classes, or train a teacher (source: train)",
        )
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(given) & set(expected) if given[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
            if keys
        )
        raise ModelError(
            f"the checkpoint does not fit architecture {architecture} ({details})",
            "Name the architecture it was trained as, and pass model.state_dict()",
        )
    model.load_state_dict(given)
    return model.eval()


def _check_onnx_teacher(path: Path, dataset: Dataset) -> None:
    import onnx

    from edgeforge_gpu.evaluation.runtime import onnx_logits, open_session

    try:
        onnx.checker.check_model(str(path))
        session = open_session(path)
    except Exception as err:
        raise ModelError(
            f"{path} is not a valid ONNX model ({type(err).__name__}: {err})",
            "Export the teacher with its framework's ONNX exporter and check it loads in "
            "ONNX Runtime",
        ) from err
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4:
        raise ModelError(
            f"the ONNX teacher takes {[(i.name, i.type, i.shape) for i in inputs]}",
            "A teacher must take one float32 tensor of images (N, C, H, W)",
        )
    fixed = [
        (got, want) for got, want in zip(inputs[0].shape[1:], dataset.input_shape, strict=True)
    ]
    if any(isinstance(got, int) and got != want for got, want in fixed):
        raise ModelError(
            f"the ONNX teacher takes images of shape {inputs[0].shape[1:]} but the data set's are "
            f"{list(dataset.input_shape)}",
            "Use a teacher trained on images of this size and channel count",
        )
    logits = onnx_logits(path, dataset.validation.x[:2])
    if logits.ndim != 2 or logits.shape[1] != dataset.num_classes:
        raise ModelError(
            f"the ONNX teacher outputs shape {list(logits.shape)} for 2 images, but the data set "
            f"has {dataset.num_classes} classes",
            "Its first output must be logits of shape (N, classes) for these classes",
        )


def _onnx_teacher(path: Path, dataset: Dataset, work_dir: Path) -> Teacher:
    import shutil

    from edgeforge_gpu.evaluation.runtime import accuracy, onnx_logits

    _check_onnx_teacher(path, dataset)
    model_path = work_dir / "fp32.onnx"
    if path.resolve() != model_path.resolve():
        shutil.copyfile(path, model_path)
    logits_path = work_dir / "train_logits.npy"
    np.save(logits_path, onnx_logits(model_path, dataset.train.x).astype(np.float32))
    test_logits = onnx_logits(model_path, dataset.test.x)
    return Teacher(
        kind="onnx",
        architecture=None,
        model=None,
        onnx_path=model_path,
        state_dict_path=None,
        train_logits_path=logits_path,
        test_logits=test_logits,
        validation_accuracy=accuracy(
            onnx_logits(model_path, dataset.validation.x), dataset.validation.y
        ),
        test_accuracy=accuracy(test_logits, dataset.test.y),
        parameters=None,
        fit=None,
        parity_max_abs_diff=None,
    )


def run(
    config: TeacherConfig,
    dataset: Dataset,
    file: Path | None,
    work_dir: Path,
    fingerprint: str,
    progress: "ProgressFn",
) -> Teacher:
    """`file` is config.file resolved to a local path; `work_dir` keeps checkpoints across
    retries; `fingerprint` identifies this request, so a changed request starts over."""
    config.check()
    work_dir.mkdir(parents=True, exist_ok=True)
    if config.source == "onnx":
        assert file is not None, "checked by config.check()"
        return _onnx_teacher(file, dataset, work_dir)

    import torch

    from edgeforge_gpu.models import count_parameters
    from edgeforge_gpu.steps import export
    from edgeforge_gpu.training.device import training_device
    from edgeforge_gpu.training.loop import accuracy, predict_logits
    from edgeforge_gpu.training.supervised import train_from_scratch

    device = training_device()
    fit_result = None
    if config.source == "checkpoint":
        assert file is not None, "checked by config.check()"
        model = load_pytorch_teacher(config.architecture, file, dataset).to(device)
    else:
        model, fit_result = train_from_scratch(
            config.architecture,
            dataset,
            config.training,
            device,
            work_dir / "training-checkpoint.pt",
            fingerprint,
            progress,
        )
    state_dict_path = work_dir / "model.pt"
    torch.save(model.state_dict(), state_dict_path)
    exported = export.run(model, dataset.test.x, work_dir / "fp32.onnx", config.export)
    test_logits = predict_logits(model, dataset.test.x, device)
    return Teacher(
        kind="pytorch",
        architecture=config.architecture,
        model=model,
        onnx_path=exported.path,
        state_dict_path=state_dict_path,
        train_logits_path=None,
        test_logits=test_logits.numpy(),
        validation_accuracy=accuracy(
            predict_logits(model, dataset.validation.x, device), dataset.validation.y
        ),
        test_accuracy=accuracy(test_logits, dataset.test.y),
        parameters=count_parameters(model),
        fit=fit_result,
        parity_max_abs_diff=exported.parity_max_abs_diff,
    )
