"""DatasetSpec: which data set a rollout trains and evaluates on, and how it is split."""

from dataclasses import dataclass, field

from edgeforge_gpu.fields import doc


@dataclass(frozen=True)
class DatasetSpec:
    source: str = field(
        metadata=doc(
            "fashion_mnist | digits (built in) | npz (arrays x, y; import_model: y optional) | "
            "image_folder (a subfolder per class)"
        )
    )
    path: str | None = field(
        default=None,
        metadata=doc(
            "npz file or image folder on the gpu worker; fashion_mnist: folder of its idx .gz "
            "files (default /usr/share/datasets/fashion-mnist)"
        ),
    )
    image_size: int | None = field(
        default=None,
        metadata=doc(
            "image_folder: resize every image to this square size; default: keep the size"
        ),
    )
    grayscale: bool = field(
        default=False, metadata=doc("image_folder: read images as one channel instead of RGB")
    )
    validation_fraction: float = field(
        default=0.1, metadata=doc("share of the training pool held out for validation")
    )
    test_fraction: float = field(
        default=0.2,
        metadata=doc(
            "share of all samples held out for testing (fashion_mnist uses its own test set)"
        ),
    )
    seed: int = field(
        default=0, metadata=doc("seed of every split, so each activity sees the same samples")
    )
    max_train_samples: int | None = field(
        default=None,
        metadata=doc(
            "train on a stratified subset of this many samples (limited-data experiments)"
        ),
    )
    calibration_samples: int = field(
        default=256, metadata=doc("training samples used to calibrate int8 ranges")
    )
    holdout_samples: int = field(
        default=256,
        metadata=doc("test samples shipped with each model for on-device accuracy checks"),
    )
