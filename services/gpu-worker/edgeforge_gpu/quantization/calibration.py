"""Feeding calibration images to ONNX Runtime's calibrators."""

import numpy as np
from onnxruntime.quantization import CalibrationDataReader


class ArrayCalibrationReader(CalibrationDataReader):
    """Yields the images in batches as {input name: batch}; get_next() returns None at the end,
    which is how ONNX Runtime's calibrators know the data is exhausted."""

    def __init__(self, x: np.ndarray, input_name: str, batch_size: int = 32) -> None:
        self._batches = [
            {input_name: x[start : start + batch_size]} for start in range(0, len(x), batch_size)
        ]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._batches):
            return None
        batch = self._batches[self._next]
        self._next += 1
        return batch
