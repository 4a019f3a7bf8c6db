"""Data sets: fixed-seed splits, the holdout bundle, a clear error for each kind of bad input."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeforge_gpu.data import DatasetSpec, load_dataset, write_holdout
from edgeforge_gpu.errors import ConfigError, DatasetError


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_fashion_mnist_is_the_full_set_with_its_own_test_split():
    data = load_dataset(DatasetSpec("fashion_mnist"))
    assert (len(data.train), len(data.validation), len(data.test)) == (54_000, 6_000, 10_000)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert data.train.x.dtype == np.float32 and 0.0 <= data.train.x.min() < data.train.x.max() <= 1
    assert np.bincount(data.validation.y).tolist() == [600] * 10  # stratified


def test_splits_are_fixed_by_the_seed_disjoint_and_stratified(digits):
    again = load_dataset(DatasetSpec("digits"))
    other_seed = load_dataset(DatasetSpec("digits", seed=1))
    assert again.fingerprint == digits.fingerprint != other_seed.fingerprint
    assert np.array_equal(again.train.x, digits.train.x)
    total = len(digits.train) + len(digits.validation) + len(digits.test)
    assert total == 1797 and len(digits.test) == 360  # ceil(20%)
    for split in (digits.train, digits.validation, digits.test):
        assert set(split.y.tolist()) == set(range(10))
    # Index-disjoint splits: only images that occur twice in the source may be shared.
    duplicates = 1797 - len(
        _rows(np.concatenate([digits.train.x, digits.validation.x, digits.test.x]))
    )
    assert len(_rows(digits.train.x) & _rows(digits.test.x)) <= duplicates


def test_calibration_comes_from_train_and_the_holdout_from_test(digits):
    assert len(digits.calibration) == 256 and len(digits.holdout) == 256
    assert _rows(digits.calibration.x) <= _rows(digits.train.x)
    assert _rows(digits.holdout.x) <= _rows(digits.test.x)


def test_limited_training_data_keeps_every_class():
    data = load_dataset(DatasetSpec("digits", max_train_samples=50))
    assert len(data.train) == 50 and np.bincount(data.train.y).tolist() == [5] * 10
    assert len(data.calibration) == 50  # never more than the training split


def test_holdout_bundle_bytes_depend_only_on_its_samples(digits, tmp_path):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    write_holdout(digits.holdout, first)
    write_holdout(digits.holdout, second)
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )
    with np.load(first) as bundle:
        assert bundle["x"].dtype == np.float32 and bundle["x"].shape == (256, 1, 8, 8)
        assert bundle["y"].dtype == np.int64 and np.array_equal(bundle["y"], digits.holdout.y)


def _npz(tmp_path: Path, **arrays: np.ndarray) -> DatasetSpec:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return DatasetSpec("npz", path=str(path))


def _images(n: int = 200, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 12, 12), dtype=np.uint8), np.arange(n) % classes


def test_npz_images_are_scaled_and_given_a_channel(tmp_path):
    x, y = _images()
    data = load_dataset(_npz(tmp_path, x=x, y=y))
    assert data.input_shape == (1, 12, 12) and data.num_classes == 4
    assert data.train.x.dtype == np.float32 and data.train.x.max() <= 1.0


@pytest.mark.parametrize(
    ("arrays", "problem", "fix"),
    [
        ({"x": _images()[0]}, "no array 'y'", "np.savez(path, x=images, y=labels)"),
        ({"images": _images()[0], "y": _images()[1]}, "no array 'x'", "np.savez"),
        (
            {"x": np.zeros((200, 12, 12, 3), np.uint8), "y": _images()[1]},
            "channels-last",
            "transpose(0, 3, 1, 2)",
        ),
        ({"x": np.zeros((200, 144), np.uint8), "y": _images()[1]}, "expected (N, C, H, W)", ""),
        ({"x": _images()[0], "y": np.eye(4)[_images()[1]]}, "one-hot", "argmax(axis=1)"),
        ({"x": _images()[0], "y": _images()[1][:150]}, "200 images but labels", "one integer"),
        ({"x": _images()[0], "y": _images()[1].astype(np.float32)}, "not integers", "astype"),
        ({"x": _images()[0], "y": _images()[1] * 2}, "class 1 has no sample", "without gaps"),
        ({"x": _images()[0], "y": _images()[1] - 1}, "labels include -1", "0..K-1"),
        (
            {"x": np.full((200, 1, 4, 4), np.nan, np.float32), "y": _images()[1]},
            "NaN",
            "Clean",
        ),
        ({"x": np.zeros((0, 4, 4), np.uint8), "y": np.zeros(0, np.int64)}, "empty", ""),
        ({"x": _images(12)[0], "y": _images(12)[1]}, "test split", "more samples"),
        ({"x": _images(25)[0], "y": _images(25)[1]}, "validation split", "more samples"),
    ],
)
def test_bad_npz_files_say_what_is_wrong_and_how_to_fix_it(tmp_path, arrays, problem, fix):
    with pytest.raises(DatasetError) as error:
        load_dataset(_npz(tmp_path, **arrays))
    assert problem in error.value.problem and fix in error.value.fix


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(DatasetSpec("npz", path=str(tmp_path / "nope.npz")))
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match=r"bad\.npz is not a readable \.npz"):
        load_dataset(DatasetSpec("npz", path=str(tmp_path / "bad.npz")))
    with pytest.raises(DatasetError, match="needs a path"):
        load_dataset(DatasetSpec("npz"))


def test_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="fashion_mnist, image_folder, npz"):
        load_dataset(DatasetSpec("cifar"))
    with pytest.raises(ConfigError, match="validation_fraction"):
        load_dataset(DatasetSpec("digits", validation_fraction=1.5))
    with pytest.raises(DatasetError, match="fewer than the 10 classes"):
        load_dataset(DatasetSpec("digits", max_train_samples=5))


def _image_folder(root: Path, sizes: dict[str, tuple[int, int]], per_class: int = 15) -> Path:
    rng = np.random.default_rng(0)
    for name, size in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_image_folders_give_a_class_per_subfolder(tmp_path):
    root = _image_folder(tmp_path / "imgs", {"cat": (10, 10), "dog": (10, 10)})
    rgb = load_dataset(DatasetSpec("image_folder", path=str(root)))
    assert rgb.classes == ("cat", "dog") and rgb.input_shape == (3, 10, 10)
    gray = load_dataset(DatasetSpec("image_folder", path=str(root), grayscale=True, image_size=8))
    assert gray.input_shape == (1, 8, 8)


def test_bad_image_folders_say_what_is_wrong(tmp_path):
    mixed = _image_folder(tmp_path / "mixed", {"a": (10, 10), "b": (12, 12)})
    with pytest.raises(DatasetError, match="image_size"):
        load_dataset(DatasetSpec("image_folder", path=str(mixed)))
    lonely = _image_folder(tmp_path / "lonely", {"a": (10, 10)})
    with pytest.raises(DatasetError, match="1 class subfolder"):
        load_dataset(DatasetSpec("image_folder", path=str(lonely)))
    broken = _image_folder(tmp_path / "broken", {"a": (10, 10), "b": (10, 10)})
    (broken / "b" / "0.png").write_text("not an image")
    with pytest.raises(DatasetError, match=r"cannot read image .*0\.png"):
        load_dataset(DatasetSpec("image_folder", path=str(broken)))
