"""Optimiser and schedule shared by the training modules."""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from timetok.core.errors import ConfigError


class RunProgress:
    """The fraction of a run done at a step, in [0, 1].

    Counted in steps when the run has a known number of them, in time when it has a
    ``max_time`` budget, and the further of the two when it has both, so a cosine decay
    ends where the run ends whichever limit stops it. The time comes from rank 0, so every
    process of a distributed run steps with the same learning rate.
    """

    def __init__(self, trainer: L.Trainer):
        self.trainer = trainer
        steps = trainer.estimated_stepping_batches
        self.total_steps = max(int(steps), 1) if math.isfinite(steps) else None
        self.timer = next((cb for cb in trainer.callbacks
                           if isinstance(cb, Timer) and cb.time_remaining() is not None), None)
        self.budget_s = (self.timer.time_elapsed() + self.timer.time_remaining()
                         if self.timer is not None else None)
        if self.total_steps is None and self.timer is None:
            raise ConfigError("a run needs a step, epoch or time limit for its schedule; pass "
                              "max_steps, n_epochs or max_time")

    def __call__(self, step: int) -> float:
        done = 0.0 if self.total_steps is None else step / self.total_steps
        if self.timer is not None and self.timer.start_time() is not None:
            elapsed = self.trainer.strategy.broadcast(self.timer.time_elapsed())
            done = max(done, elapsed / self.budget_s)
        return min(done, 1.0)


def adamw_cosine(params, lr: float, weight_decay: float, warmup_steps: int, trainer: L.Trainer):
    """AdamW with linear warm-up then cosine decay to 10 % of ``lr``, stepped every batch."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    progress = RunProgress(trainer)
    if progress.total_steps is not None:
        warmup_steps = min(warmup_steps, progress.total_steps // 10)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress(step)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
