"""Import step ("bring your own model"): an already trained ONNX classifier from any framework
becomes the fp32 student, with no teacher and no training. It is checked (onnx.checker, ONNX
Runtime, one float32 image input of the data set's shape, logits for its classes) and copied into
the work folder; images without labels are labelled with its own top-1 predictions."""

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeforge_gpu.data import Dataset, DatasetSpec, load_dataset
from edgeforge_gpu.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import onnxruntime

ONNX_FIX = (
    "Export the model with its framework's ONNX exporter (torch.onnx.export, tf2onnx, ...) and "
    "check that onnxruntime.InferenceSession(path) loads it"
)


@dataclass(frozen=True)
class ImportedModel:
    path: Path
    """The model as the fp32 student: <work_dir>/fp32.onnx."""
    dataset: Dataset
    """The data set, labelled with the model's predictions when it came without labels."""
    parameters: int
    """Elements of the graph's initializers: the weights, as far as ONNX tells them apart."""


def _open(path: Path) -> "onnxruntime.InferenceSession":
    """The model in ONNX Runtime, after onnx.checker; a ModelError when it is not ONNX at all."""
    import onnx

    from edgeforge_gpu.evaluation.runtime import open_session

    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # the checker and the parser raise several unrelated types
        raise ModelError(
            f"{path.name} is not a valid ONNX model ({type(err).__name__}: {err})", ONNX_FIX
        ) from err
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer):
        # Only the .onnx file travels to the object store and to devices.
        raise ModelError(
            f"{path.name} keeps its weights in external data files",
            "Save it as one file: onnx.save(onnx.load(path), path, save_as_external_data=False)",
        )
    try:
        session = open_session(path)
    except Exception as err:
        raise ModelError(
            f"ONNX Runtime cannot load {path.name} ({type(err).__name__}: {err})", ONNX_FIX
        ) from err
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4:
        raise ModelError(
            f"the model takes {[(i.name, i.type, i.shape) for i in inputs]}",
            "An imported classifier must take one float32 tensor of images (N, C, H, W)",
        )
    batch = inputs[0].shape[0]
    if isinstance(batch, int) and batch > 1:
        # Evaluation feeds the last, partial batch as it is, and devices run batch 1.
        raise ConfigError(
            f"the model's batch dimension is fixed at {batch}",
            "Export it with a dynamic batch dimension (torch.onnx.export(..., dynamic_axes="
            "{'input': {0: 'batch'}})), or with batch 1",
        )
    return session


def _shape(dims: list) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else "N" for d in dims) + ")"


def check_input_shape(session: "onnxruntime.InferenceSession", image_shape: tuple) -> None:
    """A ConfigError naming both shapes when the model's fixed C, H, W differ from the images'."""
    dims = session.get_inputs()[0].shape
    c, h, w = (int(d) for d in image_shape)
    if all(
        not isinstance(got, int) or got == want
        for got, want in zip(dims[1:], (c, h, w), strict=True)
    ):
        return
    hint = ""
    if list(dims[1:]) == [h, w, c]:
        hint = "; the model looks channels-last (N, H, W, C), edgeforge feeds channels-first"
    raise ConfigError(
        f"the model takes images of shape {_shape(dims)} but the data set's are "
        f"(N, {c}, {h}, {w}){hint}",
        "Import a model trained on images of this size and channel count, or change the "
        "DatasetSpec (image_size, grayscale) to match the model",
    )


def _logits(session: "onnxruntime.InferenceSession", path: Path, x: np.ndarray) -> np.ndarray:
    """The model's logits for `x`, after checking that it takes these images and that its first
    output is (N, classes)."""
    from edgeforge_gpu.evaluation.runtime import onnx_logits

    check_input_shape(session, x.shape[1:])
    probe = onnx_logits(path, x[:2])
    if probe.ndim != 2 or probe.shape[0] != len(x[:2]) or probe.shape[1] < 2:
        raise ModelError(
            f"the model's first output has shape {list(probe.shape)} for 2 images",
            "Its first output must be logits (or probabilities) of shape (N, classes)",
        )
    return onnx_logits(path, x)


def _count_parameters(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sum(int(np.prod(init.dims)) for init in model.graph.initializer)


def run(source: Path, spec: DatasetSpec, work_dir: Path) -> ImportedModel:
    """Checks the ONNX model at `source` against the data `spec` names and copies it to
    `work_dir`/fp32.onnx. Images without labels get the model's top-1 class as their label."""
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / "fp32.onnx"
    session = _open(source)
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)

    def labeller(x: np.ndarray) -> np.ndarray:
        return _logits(session, target, x)

    dataset = load_dataset(spec, label_with=labeller)
    logits = _logits(session, target, dataset.validation.x[:2])
    if logits.shape[1] != dataset.num_classes:
        raise ModelError(
            f"the model outputs {logits.shape[1]} classes but the data set has "
            f"{dataset.num_classes}",
            "Import a model trained on these classes (labels 0..K-1 in the model's output order)",
        )
    return ImportedModel(path=target, dataset=dataset, parameters=_count_parameters(target))
