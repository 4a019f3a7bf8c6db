"""Export step: PyTorch model -> ONNX (dynamic batch), checked by onnx.checker and by running it
in ONNX Runtime next to PyTorch on real images."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeforge_gpu.errors import ConfigError, ParityError
from edgeforge_gpu.fields import doc

if TYPE_CHECKING:
    from torch import nn

MIN_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ExportConfig:
    opset: int = field(default=17, metadata=doc("ONNX opset of the exported model (17 or newer)"))
    parity_tolerance: float = field(
        default=1e-4,
        metadata=doc("largest allowed |PyTorch - ONNX Runtime| difference of any logit"),
    )
    parity_samples: int = field(default=256, metadata=doc("test images the parity check runs on"))


@dataclass(frozen=True)
class Exported:
    path: Path
    parity_max_abs_diff: float


def run(model: "nn.Module", images: np.ndarray, target: Path, config: ExportConfig) -> Exported:
    """Exports `model` to `target`; `images` are real inputs for the parity check."""
    import copy
    import warnings

    import onnx
    import torch

    from edgeforge_gpu.evaluation.runtime import onnx_logits

    if config.opset < MIN_OPSET:
        raise ConfigError(f"opset {config.opset} requested", f"Use opset {MIN_OPSET} or newer")
    # Export a CPU, float32, default-layout copy: the training copy may sit on a GPU in
    # channels_last, and the exported graph should not depend on where training ran.
    cpu_model = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).float().eval()
    sample = torch.from_numpy(images[: config.parity_samples])
    target.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (dynamo=True), which
        # here is slow, and fails to convert some models down to opset 17. Until it does not, the
        # deprecation warning is noise.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            cpu_model,
            (sample[:1],),
            str(target),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=config.opset,
            dynamo=False,
        )
    onnx.checker.check_model(str(target), full_check=True)
    with torch.no_grad():
        expected = cpu_model(sample).numpy()
    diff = float(np.abs(onnx_logits(target, sample.numpy()) - expected).max())
    if diff > config.parity_tolerance:
        raise ParityError(
            f"ONNX Runtime's logits differ from PyTorch's by up to {diff:.2e} on "
            f"{len(sample)} test images (tolerance {config.parity_tolerance:.0e})",
            "The exporter mistranslated an op: try another opset, or report the architecture",
        )
    return Exported(path=target, parity_max_abs_diff=diff)
