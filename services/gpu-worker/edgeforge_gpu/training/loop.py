"""The training loop: mini-batch SGD/AdamW with a per-step schedule, fp16 autocast on CUDA, a
checkpoint after every epoch, and resumption from it when an activity is retried."""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from edgeforge_gpu.data import LabeledImages
from edgeforge_gpu.training.checkpoint import (
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from edgeforge_gpu.training.config import TrainingConfig
from edgeforge_gpu.training.device import autocast, seed_everything
from edgeforge_gpu.training.objectives import Objective

REPORT_EVERY_BATCHES = 20
MAX_SHIFT = 2


@dataclass(frozen=True)
class Progress:
    """What a heartbeat says about a running fit."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    accuracy: float
    """Training accuracy over the epoch so far."""
    validation_accuracy: float | None
    """Set once the epoch is over."""


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    validation_accuracy: float
    seconds: float


@dataclass(frozen=True)
class FitResult:
    history: list[EpochRecord]
    resumed_from_epoch: int | None
    """The last epoch found in a checkpoint when this run started; None for a fresh start."""

    @property
    def seconds(self) -> float:
        """Training time over every attempt (epochs done before a crash count)."""
        return sum(record.seconds for record in self.history)


def as_tensors(images: LabeledImages, device: torch.device) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(images.x).to(device), torch.from_numpy(images.y).to(device)


def predict_logits(
    model: nn.Module, x: np.ndarray | Tensor, device: torch.device, batch_size: int = 512
) -> Tensor:
    """The model's logits for every row of x, as a float32 CPU tensor."""
    model.eval()
    data = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    out = []
    with torch.no_grad(), autocast(device):
        for start in range(0, len(data), batch_size):
            batch = data[start : start + batch_size].to(device)
            out.append(model(batch.contiguous(memory_format=torch.channels_last)).float().cpu())
    return torch.cat(out)


def accuracy(logits: Tensor, labels: np.ndarray | Tensor) -> float:
    y = torch.from_numpy(labels) if isinstance(labels, np.ndarray) else labels
    # A ratio of counts, not a float32 mean: the same number ONNX Runtime's evaluation reports.
    return int((logits.argmax(1) == y.to(logits.device)).sum()) / len(y)


def random_shift(x: Tensor, generator: torch.Generator) -> Tensor:
    """Moves each image by up to MAX_SHIFT pixels in each direction, zero-filling the border."""
    n, _, h, w = x.shape
    padded = F.pad(x, (MAX_SHIFT,) * 4)
    dy = torch.randint(0, 2 * MAX_SHIFT + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * MAX_SHIFT + 1, (n,), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + dy[:, None]
    cols = torch.arange(w, device=x.device)[None, :] + dx[:, None]
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indices around a slice put their dimensions first: (n, h, w, c).
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _optimizer(config: TrainingConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params,
        lr=config.learning_rate,
        momentum=0.9,
        nesterov=True,
        weight_decay=config.weight_decay,
    )


def _schedule(config: TrainingConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Learning-rate factor per optimisation step. Stepping per batch, not per epoch, matters
    for the short runs this worker does: a 3-epoch cosine would otherwise be a staircase."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    if config.schedule == "step":
        period = config.step_epochs * steps_per_epoch
        return lambda step: config.step_gamma ** (step // period)
    return lambda step: 1.0


def _batches(n: int, batch_size: int) -> int:
    # A trailing batch of one sample is dropped: BatchNorm cannot normalise a single value.
    return n // batch_size + (1 if n % batch_size > 1 else 0)


def fit(
    model: nn.Module,
    objective: Objective,
    train: LabeledImages,
    validation: LabeledImages,
    config: TrainingConfig,
    device: torch.device,
    checkpoint: Path,
    fingerprint: str,
    progress: ProgressFn,
) -> FitResult:
    """Trains `model` in place. `fingerprint` identifies the run (config, data, teacher): a
    checkpoint with another fingerprint belongs to another run and is not resumed."""
    config.check()
    seed_everything(config.seed)
    # channels_last lets oneDNN (CPU) and cuDNN (tensor cores) pick their fast convolutions.
    model.to(device).to(memory_format=torch.channels_last)
    extra = objective.extra_modules()
    params = [p for m in [model, *extra] for p in m.parameters()]
    optimizer = _optimizer(config, params)
    batches = _batches(len(train), config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, batches))
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    history: list[EpochRecord] = []
    resumed: int | None = None
    state = load_checkpoint(checkpoint, fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        for module, saved in zip(extra, state["extra"], strict=True):
            module.load_state_dict(saved)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        restore_rng_states(state["rng"])
        history = [EpochRecord(**record) for record in state["history"]]
        resumed = state["epoch"]

    x, y = as_tensors(train, device)
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        # The batch order depends on (seed, epoch) alone, so a resumed run replays it exactly.
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(train), generator=generator)
        # Sums stay on the device: reading a CUDA value every batch would stall the GPU's queue.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        for batch in range(batches):
            index = order[batch * config.batch_size : (batch + 1) * config.batch_size].to(device)
            xb = x[index]
            if config.augment:
                xb = random_shift(xb, generator)
            xb = xb.contiguous(memory_format=torch.channels_last)
            yb = y[index]
            with autocast(device):
                loss, logits = objective(model, xb, yb, index)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach().float() * len(index)
            correct += (logits.argmax(1) == yb).sum()
            seen += len(index)
            if batch % REPORT_EVERY_BATCHES == 0:
                progress(
                    Progress(
                        epoch,
                        config.epochs,
                        batch,
                        batches,
                        float(loss_sum) / seen,
                        float(correct) / seen,
                        None,
                    )
                )
        validation_accuracy = accuracy(predict_logits(model, validation.x, device), validation.y)
        record = EpochRecord(
            epoch=epoch,
            train_loss=float(loss_sum) / seen,
            train_accuracy=float(correct) / seen,
            validation_accuracy=validation_accuracy,
            seconds=time.perf_counter() - started,
        )
        history.append(record)
        save_checkpoint(
            checkpoint,
            {
                "fingerprint": fingerprint,
                "epoch": epoch,
                "model": model.state_dict(),
                "extra": [module.state_dict() for module in extra],
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_states(),
                "history": [asdict(r) for r in history],
            },
        )
        progress(
            Progress(
                epoch,
                config.epochs,
                batches,
                batches,
                record.train_loss,
                record.train_accuracy,
                validation_accuracy,
            )
        )
    model.eval()
    return FitResult(history=history, resumed_from_epoch=resumed)
