"""Optimizers and the learning-rate schedule.

The paper's recipe is Adam with lr 1e-3, no weight decay, and the learning rate divided by 10 at given
epochs (MPII: 90 and 120 of 140; COCO: 170 and 200 of 210). Weight decay is 0 unless asked for: the
reference repositories' Adam ignored it, and adding it silently has ruined a reimplementation. When it
is asked for, the box corners, piece weights, norms and biases are left out of it (decay would pull
every box towards the window centre).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from boxpose.nn import BoxConv2d

OPTIMIZERS = ("adam", "adamw", "sgd")


def build_optimizer(
    model: nn.Module,
    name: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """An optimizer over ``model``'s trainable parameters (see the module docstring on weight decay)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {name!r}")
    decay, no_decay = [], []
    box_params = {id(p) for m in model.modules() if isinstance(m, BoxConv2d) for p in m.parameters()}
    for param_name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in box_params or p.ndim <= 1 or param_name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(betas))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)


@dataclass
class StepSchedule:
    """Step decay at epoch milestones, with an optional linear warm-up over the first iterations.

    The learning rate is a pure function of (epoch, global step), so a resumed run follows exactly the
    same schedule. Epochs are 0-based: with ``milestones=[90, 120]`` epochs 90-119 run at lr * gamma.
    """

    base_lr: float
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 0.001

    def lr(self, epoch: int, step: int) -> float:
        factor = self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        if step < self.warmup_iters:
            alpha = step / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return self.base_lr * factor

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, step: int) -> float:
        lr = self.lr(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict:
        return asdict(self)
