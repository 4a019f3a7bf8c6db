"""Where samples come from: the built-in data sets and a user's files, by source name."""

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeforge_gpu.data.images import LabeledImages, check_images, check_pixels
from edgeforge_gpu.data.spec import DatasetSpec
from edgeforge_gpu.errors import DatasetError, unknown_name

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DATASET_LABELS, MODEL_LABELS = "dataset", "model_predictions"

Labeller = Callable[[np.ndarray], np.ndarray]
"""Logits (N, K) for images (N, C, H, W): the model that labels a data set that has no labels."""


@dataclass(frozen=True)
class SourceData:
    pool: LabeledImages
    """Samples to split into train, validation (and test, when the source has no test set)."""
    test: LabeledImages | None
    """The source's own test set, when it has one (Fashion-MNIST)."""
    classes: tuple[str, ...]
    labels: str = DATASET_LABELS
    """dataset | model_predictions (unlabelled images, labelled by a Labeller's top-1)."""


def _read_idx(path: Path, magic: int) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(
            f"Fashion-MNIST file {path} is missing",
            "Install the Debian package dataset-fashion-mnist (npm run bootstrap does), "
            "or point DatasetSpec.path at a folder holding the four idx .gz files",
        )
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data, dtype=">i4", count=1 + (magic & 0xFF))
    if header[0] != magic:
        raise DatasetError(f"{path} is not an idx file (magic {header[0]})", "Re-download it")
    return np.frombuffer(data, dtype=np.uint8, offset=4 * len(header)).reshape(header[1:])


def fashion_mnist(spec: DatasetSpec) -> SourceData:
    folder = Path(spec.path) if spec.path else FASHION_MNIST_DIR

    def split(prefix: str) -> LabeledImages:
        x = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 0x803)
        y = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 0x801)
        return check_images(x, y, f"Fashion-MNIST {prefix} files in {folder}")

    return SourceData(pool=split("train"), test=split("t10k"), classes=FASHION_MNIST_CLASSES)


def digits(spec: DatasetSpec) -> SourceData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixels are 0..16 in this data set; scale them like the uint8 sources, to [0, 1].
    x = (bunch.images / 16.0).astype(np.float32)
    return SourceData(
        pool=check_images(x, bunch.target, "scikit-learn digits"),
        test=None,
        classes=tuple(str(c) for c in bunch.target_names),
    )


def _user_path(spec: DatasetSpec, what: str) -> Path:
    if not spec.path:
        raise DatasetError(f"source {spec.source} needs a path", f"Set DatasetSpec.path to {what}")
    path = Path(spec.path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist on the gpu worker", f"Set path to {what}")
    return path


def npz(spec: DatasetSpec, label_with: Labeller | None = None) -> SourceData:
    path = _user_path(spec, "an .npz file with arrays x and y")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DatasetError(
            f"{path} is not a readable .npz file ({err})", "Save it with np.savez"
        ) from err
    with archive:
        names = set(archive.files)
        # Without labels only an imported model can stand in for them (its own predictions).
        required = ("x",) if label_with is not None else ("x", "y")
        for key, what in (("x", "images"), ("y", "labels")):
            if key in required and key not in names:
                note = "; only import_model takes images without labels" if key == "y" else ""
                raise DatasetError(
                    f"{path} has no array {key!r} ({what}); it holds: "
                    f"{', '.join(sorted(names))}{note}",
                    "Save it with np.savez(path, x=images, y=labels)",
                )
        if "y" not in names:
            assert label_with is not None
            return _labelled_by_model(check_pixels(archive["x"], str(path)), label_with)
        images = check_images(archive["x"], archive["y"], str(path))
    classes = tuple(str(c) for c in range(int(images.y.max()) + 1))
    return SourceData(pool=images, test=None, classes=classes)


def _labelled_by_model(x: np.ndarray, label_with: Labeller) -> SourceData:
    """Every sample labelled with the model's top-1 class, so that accuracy measured later is
    agreement with that model. The classes are its outputs, predicted or not."""
    logits = label_with(x)
    return SourceData(
        pool=LabeledImages(x, logits.argmax(1).astype(np.int64)),
        test=None,
        classes=tuple(str(c) for c in range(logits.shape[1])),
        labels=MODEL_LABELS,
    )


def image_folder(spec: DatasetSpec) -> SourceData:
    from PIL import Image, UnidentifiedImageError

    root = _user_path(spec, "a folder with one subfolder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DatasetError(
            f"{root} has {len(classes)} class subfolder(s)",
            "Put the images of each class in their own subfolder (at least two classes)",
        )
    mode = "L" if spec.grayscale else "RGB"
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(
                f"class folder {root / name} holds no images", "Add images or remove it"
            )
        for file in files:
            try:
                with Image.open(file) as opened:
                    img = opened.convert(mode)
                if spec.image_size:
                    img = img.resize((spec.image_size, spec.image_size), Image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as err:
                raise DatasetError(f"cannot read image {file} ({err})", "Fix or remove it") from err
            if images and pixels.shape != images[0].shape:
                raise DatasetError(
                    f"{file} is {pixels.shape[:2]} pixels "
                    f"but the first image is {images[0].shape[:2]}",
                    "Set DatasetSpec.image_size so every image is resized to one size",
                )
            images.append(pixels)
            labels.append(label)
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return SourceData(
        pool=check_images(x, np.asarray(labels), str(root)), test=None, classes=tuple(classes)
    )


SOURCES: dict[str, Callable[[DatasetSpec], SourceData]] = {
    "fashion_mnist": fashion_mnist,
    "digits": digits,
    "npz": npz,
    "image_folder": image_folder,
}


def read_source(spec: DatasetSpec, label_with: Labeller | None = None) -> SourceData:
    """`label_with` labels the images of a source that has no labels (an .npz with only x);
    sources with labels ignore it."""
    try:
        reader = SOURCES[spec.source]
    except KeyError:
        raise unknown_name("data set source", spec.source, SOURCES) from None
    if reader is npz:  # the one source that may come without labels
        return npz(spec, label_with)
    return reader(spec)
