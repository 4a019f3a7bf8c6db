"""The distillation loss against a value computed by hand."""

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from edgeforge_gpu.training.objectives import kd_loss


def _softmax(values: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


def test_matches_a_hand_computed_value():
    student, teacher, label = [1.0, 2.0, 0.5], [3.0, 0.0, 1.0], 1
    temperature, alpha = 2.0, 0.7
    p_teacher = _softmax(teacher, temperature)
    p_student = _softmax(student, temperature)
    kl = sum(t * math.log(t / s) for t, s in zip(p_teacher, p_student, strict=True))
    cross_entropy = -math.log(_softmax(student, 1.0)[label])
    expected = alpha * temperature**2 * kl + (1 - alpha) * cross_entropy

    got = kd_loss(
        torch.tensor([student]), torch.tensor([teacher]), torch.tensor([label]), temperature, alpha
    )
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # KL = 0.31356, CE = 0.46437: 0.7 * 4 * 0.31356 + 0.3 * 0.46437
    assert expected == pytest.approx(1.01728, abs=1e-5)


def test_averages_over_the_batch_and_reduces_to_its_two_terms():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    assert float(kd_loss(student, teacher, labels, 3.0, 0.0)) == pytest.approx(
        float(F.cross_entropy(student, labels))
    )
    per_sample = [
        float(kd_loss(student[i : i + 1], teacher[i : i + 1], labels[i : i + 1], 3.0, 1.0))
        for i in range(8)
    ]
    assert float(kd_loss(student, teacher, labels, 3.0, 1.0)) == pytest.approx(
        sum(per_sample) / 8, rel=1e-5
    )
    # Identical logits: nothing to learn from the teacher.
    assert float(kd_loss(teacher, teacher, labels, 3.0, 1.0)) == pytest.approx(0.0, abs=1e-6)
