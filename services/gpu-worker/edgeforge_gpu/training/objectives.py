"""What a training run minimises: plain cross-entropy, or Hinton et al.'s distillation loss with
an optional FitNets hint on intermediate features."""

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812 - the name every torch codebase uses
from torch import Tensor, nn

from edgeforge_gpu.errors import ConfigError


def kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float, alpha: float
) -> Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).

    T^2 keeps the soft term's gradients on the scale of the hard term's as T grows (Hinton et
    al. 2015, section 2); the KL is averaged over the batch, like the cross-entropy.
    """
    s = student_logits.float()
    soft = F.kl_div(
        F.log_softmax(s / temperature, dim=1),
        F.log_softmax(teacher_logits.float() / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(s, labels)


class Objective(Protocol):
    def extra_modules(self) -> list[nn.Module]:
        """Trainable modules besides the model (hint regressors): optimised and checkpointed."""
        ...

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, index: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(loss, the model's logits) for the batch x, y at positions `index` of the train split."""
        ...


class CrossEntropy:
    def extra_modules(self) -> list[nn.Module]:
        return []

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, index: Tensor
    ) -> tuple[Tensor, Tensor]:
        logits = model(x)
        return F.cross_entropy(logits.float(), y), logits


class _FeatureTap:
    """Keeps the latest output of one named layer."""

    def __init__(self, model: nn.Module, layer: str, role: str) -> None:
        modules = dict(model.named_modules())
        if layer not in modules:
            names = [n for n in modules if n and n.count(".") < 2]
            raise ConfigError(
                f"the {role} has no layer {layer!r}", f"Name one of: {', '.join(names)}"
            )
        self.output: Tensor | None = None
        modules[layer].register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: object, output: Tensor) -> None:
        self.output = output


class FeatureHint:
    """FitNets (Romero et al. 2015): a 1x1 convolution maps the student's features onto the
    teacher's, and their mean squared difference joins the loss."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        teacher_layer: str,
        student_layer: str,
        probe: Tensor,
    ) -> None:
        self.teacher_tap = _FeatureTap(teacher, teacher_layer, "teacher")
        self.student_tap = _FeatureTap(student, student_layer, "student")
        # One forward pass tells the channel counts, which the regressor needs up front.
        was_training = student.training
        student.eval()
        with torch.no_grad():
            teacher(probe)
            student(probe)
        student.train(was_training)
        t, s = self.teacher_tap.output, self.student_tap.output
        if t is None or s is None or t.dim() != 4 or s.dim() != 4:
            raise ConfigError(
                f"hint layers {teacher_layer!r} / {student_layer!r} do not give 4-D feature maps",
                "Pick convolutional layers (e.g. a ResNet's layer2 and a student block)",
            )
        self.regressor = nn.Conv2d(s.shape[1], t.shape[1], kernel_size=1, bias=False).to(s.device)

    def loss(self) -> Tensor:
        t, s = self.teacher_tap.output, self.student_tap.output
        assert t is not None and s is not None, "hint taps are filled by the forward passes"
        mapped = self.regressor(s).float()
        # FitNets pairs layers of equal resolution; pooling the teacher's map to the student's
        # lets any pair be chosen without changing either network.
        if t.shape[-2:] != mapped.shape[-2:]:
            t = F.adaptive_avg_pool2d(t, mapped.shape[-2:])
        return F.mse_loss(mapped, t.float())


class Distillation:
    """Hinton distillation from teacher logits, computed online or looked up in a cache."""

    def __init__(
        self,
        teacher_logits: Callable[[Tensor, Tensor], Tensor],
        temperature: float,
        alpha: float,
        hint: FeatureHint | None = None,
        hint_weight: float = 0.0,
    ) -> None:
        self.teacher_logits = teacher_logits
        self.temperature = temperature
        self.alpha = alpha
        self.hint = hint
        self.hint_weight = hint_weight

    def extra_modules(self) -> list[nn.Module]:
        return [self.hint.regressor] if self.hint else []

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, index: Tensor
    ) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            teacher = self.teacher_logits(x, index)
        logits = model(x)
        loss = kd_loss(logits, teacher, y, self.temperature, self.alpha)
        if self.hint:
            loss = loss + self.hint_weight * self.hint.loss()
        return loss, logits
