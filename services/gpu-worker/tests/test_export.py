"""ONNX export: a valid model with a dynamic batch, computing what PyTorch computes."""

import onnx
import pytest
import torch
from torch import nn

from edgeforge_gpu.errors import ConfigError, ParityError
from edgeforge_gpu.evaluation.model_facts import describe_model
from edgeforge_gpu.evaluation.runtime import onnx_logits
from edgeforge_gpu.models import ARCHITECTURES, build_model
from edgeforge_gpu.steps.export import ExportConfig, run


@pytest.mark.parametrize("name", sorted(set(ARCHITECTURES) - {"resnet18"}))
def test_exports_match_pytorch_on_real_images(name, digits, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, 1, 10).eval()
    exported = run(model, digits.test.x, tmp_path / "model.onnx", ExportConfig())
    assert exported.parity_max_abs_diff < 1e-4
    facts = describe_model(exported.path)
    assert facts.opset == 17
    assert facts.inputs[0].name == "input" and facts.inputs[0].shape == ["batch", 1, 8, 8]
    assert facts.outputs[0].shape == ["batch", 10]
    for batch in (1, 7):  # the batch dimension is dynamic
        assert onnx_logits(exported.path, digits.test.x[:batch]).shape == (batch, 10)
    onnx.checker.check_model(str(exported.path), full_check=True)


class TracedConstant(nn.Module):
    """Its output scale is read with .item(), which the exporter freezes at the traced value:
    a mistranslation that only running the model on real inputs reveals."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * x.mean().item()


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_a_model_the_exporter_mistranslates_fails_parity(digits, tmp_path):
    with pytest.raises(ParityError) as error:
        run(TracedConstant().eval(), digits.test.x, tmp_path / "model.onnx", ExportConfig())
    assert "differ from PyTorch's" in error.value.problem


def test_opsets_before_17_are_refused(digits, tmp_path):
    with pytest.raises(ConfigError, match="opset 13"):
        run(build_model("small_cnn", 1, 10), digits.test.x, tmp_path / "m.onnx", ExportConfig(13))
