"""Dataset: a source cut into fixed-seed train / validation / test splits, plus the calibration
subset and the holdout bundle that ships with each model."""

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from edgeforge_gpu.data.images import LabeledImages
from edgeforge_gpu.data.sources import DATASET_LABELS, Labeller, read_source
from edgeforge_gpu.data.spec import DatasetSpec
from edgeforge_gpu.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: LabeledImages
    validation: LabeledImages
    test: LabeledImages
    calibration: LabeledImages
    """A random subset of train: what int8 calibration sees."""
    holdout: LabeledImages
    """A random subset of test: shipped to devices to check accuracy on their own hardware."""
    fingerprint: str
    """sha256 over every split's contents: activities check they work on the same samples."""
    labels: str = DATASET_LABELS
    """dataset | model_predictions: where y comes from; with model predictions, accuracy is
    agreement with the model that labelled the images."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)


def _split(
    data: LabeledImages,
    fraction: float,
    seed: int,
    split: str,
    num_classes: int,
    stratify: bool = True,
) -> tuple[LabeledImages, LabeledImages]:
    """Holds out `fraction` of `data`, every class in proportion. Returns (rest, held out);
    both must hold every class, or accuracy on them would not mean much.

    Without `stratify` (labels a model predicted, which need not cover every class) the split is
    random, and each side needs only one sample.
    """
    from sklearn.model_selection import train_test_split

    held = math.ceil(fraction * len(data))
    rest = len(data) - held
    minimum = num_classes if stratify else 1
    if held < minimum or rest < minimum:
        raise DatasetError(
            f"{len(data)} samples cannot give a {split} split of {fraction:.0%} "
            f"holding every one of "
            f"{num_classes} classes ({held} held out, {rest} left)",
            "Provide more samples per class, or change the split fractions",
        )
    try:
        keep, out = train_test_split(
            np.arange(len(data)),
            test_size=held,
            random_state=seed,
            stratify=data.y if stratify else None,
        )
    except ValueError as err:  # a class with a single sample cannot be stratified
        raise DatasetError(
            f"cannot make a stratified {split} split: {err}",
            "Provide at least two samples of every class",
        ) from err
    return data.take(np.sort(keep)), data.take(np.sort(out))


def _stratified_subset(
    data: LabeledImages, count: int, seed: int, num_classes: int
) -> LabeledImages:
    from sklearn.model_selection import train_test_split

    if count < num_classes:
        raise DatasetError(
            f"max_train_samples={count} is fewer than the {num_classes} classes",
            "Allow at least one training sample per class",
        )
    if len(data) - count < num_classes:  # too few left out to stratify; nearly everything is kept
        return _random_subset(data, count, seed)
    keep, _ = train_test_split(
        np.arange(len(data)), train_size=count, random_state=seed, stratify=data.y
    )
    return data.take(np.sort(keep))


def _random_subset(data: LabeledImages, count: int, seed: int) -> LabeledImages:
    rng = np.random.default_rng(seed)
    return data.take(np.sort(rng.permutation(len(data))[: min(count, len(data))]))


def _fingerprint(splits: list[LabeledImages]) -> str:
    digest = hashlib.sha256()
    for split in splits:
        digest.update(str(split.x.shape).encode())
        digest.update(split.x.tobytes())
        digest.update(split.y.tobytes())
    return digest.hexdigest()


def _check_fractions(spec: DatasetSpec, has_test: bool) -> None:
    fractions = {"validation_fraction": spec.validation_fraction}
    if not has_test:
        fractions["test_fraction"] = spec.test_fraction
    for name, value in fractions.items():
        if not 0 < value < 1:
            raise ConfigError(f"DatasetSpec.{name} is {value}", "Use a fraction between 0 and 1")
    if sum(fractions.values()) >= 0.9:
        raise ConfigError(
            f"validation and test fractions add up to {sum(fractions.values()):.2f}",
            "Leave at least 10% of the samples for training",
        )
    for name in ("calibration_samples", "holdout_samples"):
        if getattr(spec, name) < 1:
            raise ConfigError(f"DatasetSpec.{name} is {getattr(spec, name)}", "Use 1 or more")
    if spec.max_train_samples is not None and spec.max_train_samples < 1:
        raise ConfigError(
            f"max_train_samples is {spec.max_train_samples}", "Use 1 or more, or null"
        )


def load_dataset(spec: DatasetSpec, label_with: Labeller | None = None) -> Dataset:
    """The splits of `spec`'s samples. `label_with` labels images that come without labels (an
    .npz with only x) with its top-1 class; without it, such a source is a DatasetError."""
    source = read_source(spec, label_with)
    _check_fractions(spec, has_test=source.test is not None)
    k = len(source.classes)
    stratify = source.labels == DATASET_LABELS
    pool, test = source.pool, source.test
    if test is None:
        pool, test = _split(pool, spec.test_fraction, spec.seed, "test", k, stratify)
    elif test.x.shape[1:] != pool.x.shape[1:] or int(test.y.max()) >= k:
        raise DatasetError("the test set does not match the training set", "Check the source files")
    # The validation fraction is of the pool left after the test split, as the field says.
    train, validation = _split(pool, spec.validation_fraction, spec.seed, "validation", k, stratify)
    if spec.max_train_samples is not None and spec.max_train_samples < len(train):
        train = (
            _stratified_subset(train, spec.max_train_samples, spec.seed, k)
            if stratify
            else _random_subset(train, spec.max_train_samples, spec.seed)
        )
    return Dataset(
        name=spec.source,
        classes=source.classes,
        train=train,
        validation=validation,
        test=test,
        calibration=_random_subset(train, spec.calibration_samples, spec.seed),
        holdout=_random_subset(test, spec.holdout_samples, spec.seed + 1),
        fingerprint=_fingerprint([train, validation, test]),
        labels=source.labels,
    )
