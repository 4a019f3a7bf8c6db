"""TrainingConfig: the optimisation settings shared by teacher training and distillation."""

from dataclasses import dataclass, field

from edgeforge_gpu.errors import ConfigError
from edgeforge_gpu.fields import doc

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "none")


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = field(default=10, metadata=doc("passes over the training split"))
    batch_size: int = field(default=128, metadata=doc("samples per optimisation step"))
    optimizer: str = field(default="sgd", metadata=doc("sgd (Nesterov, momentum 0.9) | adamw"))
    learning_rate: float = field(default=0.05, metadata=doc("peak learning rate"))
    weight_decay: float = field(default=5e-4, metadata=doc("L2 penalty (decoupled for adamw)"))
    schedule: str = field(
        default="cosine",
        metadata=doc("cosine (to zero, per step) | step (x step_gamma every step_epochs) | none"),
    )
    step_epochs: int = field(default=10, metadata=doc("step schedule: epochs between decays"))
    step_gamma: float = field(
        default=0.1, metadata=doc("step schedule: factor applied at each decay")
    )
    augment: bool = field(
        default=False, metadata=doc("shift each training image by up to 2 pixels at random")
    )
    seed: int = field(
        default=0, metadata=doc("seeds the initial weights, the batch order and the augmentation")
    )

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs={self.epochs}, batch_size={self.batch_size}", "Both must be 1 or more"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}", f"Use one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}", f"Use one of {SCHEDULES}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate={self.learning_rate}", "Use a positive rate")
        if self.schedule == "step" and self.step_epochs < 1:
            raise ConfigError(f"step_epochs={self.step_epochs}", "Use 1 or more")
