"""What every quantization pass is given, and how one says it does not apply."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
"""Ops that carry weights: the nodes whose precision the accuracy fallback chooses."""


@dataclass(frozen=True)
class PassInputs:
    exported: Path
    """The fp32 model as exported from PyTorch."""
    prepared: Path
    """After quant_pre_process (shapes inferred, BatchNorm folded): what the passes quantize."""
    calibration: np.ndarray
    """Calibration images, float32 NCHW."""
    float_nodes: tuple[str, ...]
    """Nodes of `prepared` to leave in float (chosen by the accuracy fallback)."""
    scratch: Path
    """A folder for this variant's intermediate files (calibration caches)."""


class NotApplicable(Exception):  # noqa: N818 - an outcome, not an error: the format does not fit
    """The format has nothing to act on in this model (int4 weight-only without MatMul/Gemm)."""
