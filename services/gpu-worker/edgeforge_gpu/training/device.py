"""Where training runs: the CUDA GPU when there is one, the CPU otherwise, with the same code."""

import random

import numpy as np
import torch


def training_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device) -> torch.autocast:
    """fp16 autocast on CUDA (tensor cores); disabled on CPU, where fp16 is slower, not faster."""
    return torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda")
