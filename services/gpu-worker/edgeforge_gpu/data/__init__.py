"""Data sets: built-in (Fashion-MNIST, scikit-learn digits) and a user's (.npz, image folder),
split with fixed seeds; the calibration subset; the holdout bundle."""

from edgeforge_gpu.data.dataset import Dataset, load_dataset
from edgeforge_gpu.data.holdout import write_holdout
from edgeforge_gpu.data.images import LabeledImages, check_images
from edgeforge_gpu.data.sources import DATASET_LABELS, MODEL_LABELS, SOURCES, Labeller
from edgeforge_gpu.data.spec import DatasetSpec

__all__ = [
    "DATASET_LABELS",
    "MODEL_LABELS",
    "SOURCES",
    "Dataset",
    "DatasetSpec",
    "LabeledImages",
    "Labeller",
    "check_images",
    "load_dataset",
    "write_holdout",
]
