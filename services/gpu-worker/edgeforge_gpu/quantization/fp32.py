"""fp32: the exported model itself, the baseline every other variant is compared with."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeforge_gpu.quantization.common import PassInputs


@dataclass(frozen=True)
class Fp32Config:
    """Nothing to choose: the model ships as exported."""


def run(inputs: PassInputs, target: Path, config: Fp32Config) -> None:
    shutil.copyfile(inputs.exported, target)
