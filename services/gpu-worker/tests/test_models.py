"""Architectures by name, adapted to small images; teachers loaded from a user's checkpoint."""

import pytest
import torch

from edgeforge_gpu.errors import ConfigError, ModelError
from edgeforge_gpu.models import ARCHITECTURES, build_model, count_parameters
from edgeforge_gpu.steps.teacher import load_pytorch_teacher


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32)])
def test_every_architecture_takes_small_images(name, shape):
    model = build_model(name, in_channels=shape[0], num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.rand(2, *shape)).shape == (2, 7)


def test_students_are_smaller_than_the_teachers():
    sizes = {name: count_parameters(build_model(name, 1, 10)) for name in ARCHITECTURES}
    assert sizes["small_cnn"] * 4 < sizes["resnet10_w32"] < sizes["resnet18"]


def test_unknown_architectures_list_the_known_ones():
    with pytest.raises(ConfigError) as error:
        build_model("vgg16", 1, 10)
    assert "unknown architecture 'vgg16'" in str(error.value)
    assert "mobilenet_v3_small" in error.value.fix and "small_cnn" in error.value.fix


def test_loads_a_users_state_dict(digits, tmp_path):
    torch.manual_seed(0)
    original = build_model("small_cnn", 1, 10).eval()
    path = tmp_path / "teacher.pt"
    # Saved the way training scripts often do: wrapped, and from nn.DataParallel.
    torch.save({"state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}}, path)
    loaded = load_pytorch_teacher("small_cnn", path, digits)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), original(x))


def test_checkpoints_that_do_not_fit_are_refused_with_the_reason(digits, tmp_path):
    path = tmp_path / "five_classes.pt"
    torch.save(build_model("small_cnn", 1, 5).state_dict(), path)
    with pytest.raises(ModelError, match="has 5 outputs but the data set has 10 classes"):
        load_pytorch_teacher("small_cnn", path, digits)

    path = tmp_path / "other_architecture.pt"
    torch.save(build_model("mobilenet_v2_050", 1, 10).state_dict(), path)
    with pytest.raises(ModelError, match=r"does not fit architecture small_cnn .*missing"):
        load_pytorch_teacher("small_cnn", path, digits)

    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="cannot read the checkpoint"):
        load_pytorch_teacher("small_cnn", path, digits)
