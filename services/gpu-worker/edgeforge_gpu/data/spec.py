"""DatasetSpec: which data set a rollout trains and evaluates on, and how it is split."""

from dataclasses import dataclass

from edgeforge_gpu.fields import option, required


@dataclass(frozen=True)
class DatasetSpec:
    source: str = required(
        "fashion_mnist | digits (built in) | npz (arrays x, y) | image_folder (a subfolder per class)"
    )
    path: str | None = option(
        None,
        "npz file or image folder on the gpu worker; fashion_mnist: folder of its idx .gz files "
        "(default /usr/share/datasets/fashion-mnist)",
    )
    image_size: int | None = option(
        None, "image_folder: resize every image to this square size; default: keep the size"
    )
    grayscale: bool = option(False, "image_folder: read images as one channel instead of RGB")
    validation_fraction: float = option(0.1, "share of the training pool held out for validation")
    test_fraction: float = option(
        0.2, "share of all samples held out for testing (fashion_mnist uses its own test set)"
    )
    seed: int = option(0, "seed of every split, so each activity sees the same samples")
    max_train_samples: int | None = option(
        None, "train on a stratified subset of this many samples (limited-data experiments)"
    )
    calibration_samples: int = option(256, "training samples used to calibrate int8 ranges")
    holdout_samples: int = option(
        256, "test samples shipped with each model for on-device accuracy checks"
    )
