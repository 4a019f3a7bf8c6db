"""LabeledImages: float32 NCHW images with int64 labels, checked once where they enter."""

from dataclasses import dataclass

import numpy as np

from edgeforge_gpu.errors import DatasetError


@dataclass(frozen=True)
class LabeledImages:
    x: np.ndarray
    """float32, (N, C, H, W): pixels as the model sees them (uint8 sources scaled to [0, 1])."""
    y: np.ndarray
    """int64, (N,), class indices 0..K-1."""

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> "LabeledImages":
        return LabeledImages(self.x[indices], self.y[indices])


def check_pixels(x: np.ndarray, origin: str) -> np.ndarray:
    """Validates user-provided images and brings them to float32 (N, C, H, W).

    `origin` names where the array came from, so the error points at the right file.
    """
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] > 4 and x.shape[3] in (1, 3, 4):
        raise DatasetError(
            f"{origin}: images have shape {x.shape}, which looks like channels-last (N, H, W, C)",
            "Store them channels-first (N, C, H, W): x = x.transpose(0, 3, 1, 2)",
        )
    elif x.ndim != 4:
        raise DatasetError(
            f"{origin}: images have shape {x.shape}; expected (N, C, H, W) or (N, H, W)",
            "Store one image per row of x, channels first",
        )
    if len(x) == 0:
        raise DatasetError(f"{origin}: the data set is empty", "Provide at least a few samples")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
    else:
        raise DatasetError(
            f"{origin}: images are {x.dtype}",
            "Store pixels as uint8 (0-255) or as floats in the range the model should see",
        )
    if not np.isfinite(x).all():
        raise DatasetError(f"{origin}: images contain NaN or infinite values", "Clean the data")
    return np.ascontiguousarray(x)


def check_images(x: np.ndarray, y: np.ndarray, origin: str) -> LabeledImages:
    """Validates user-provided images and labels and brings them to LabeledImages' layout."""
    if y.ndim == 2 and y.shape[0] == x.shape[0] and y.shape[1] > 1:
        raise DatasetError(
            f"{origin}: labels have shape {y.shape}, which looks one-hot",
            "Store class indices instead: y = y.argmax(axis=1)",
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(
            f"{origin}: {x.shape[0]} images but labels of shape {y.shape}",
            "Give exactly one integer label per image, as a 1-D array",
        )
    x = check_pixels(x, origin)
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{origin}: labels are {y.dtype}, not integers",
            "Store class indices as integers: y = y.astype(np.int64)",
        )
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DatasetError(f"{origin}: labels include {y.min()}", "Use class indices 0..K-1")
    counts = np.bincount(y)
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise DatasetError(
            f"{origin}: labels go up to {len(counts) - 1} "
            f"but class {int(missing[0])} has no sample",
            "Number the classes 0..K-1 without gaps",
        )
    if len(counts) < 2:
        raise DatasetError(f"{origin}: every sample has label 0", "A classifier needs 2+ classes")
    return LabeledImages(x, y)
