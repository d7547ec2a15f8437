"""The training progress bar: Lightning's rich bar, showing a time budget where one is set.

Lightning's own bar labels a run without an epoch limit "Epoch 0/-2" and estimates the
epoch's end, which a ``--max-time`` budget may never reach; this one shows the epoch
alone and, under a budget, the time spent and left of it.
"""

from __future__ import annotations

from datetime import timedelta

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, Timer
from rich.progress import ProgressColumn
from rich.text import Text


def time_budget(trainer: L.Trainer) -> Timer | None:
    """The trainer's ``max_time`` timer, or None when the run has no time limit."""
    return next((cb for cb in trainer.callbacks
                 if isinstance(cb, Timer) and cb.time_remaining() is not None), None)


class BudgetColumn(ProgressColumn):
    """``elapsed • left`` of the run's time budget (not of the epoch)."""

    max_refresh = 0.5

    def __init__(self, timer: Timer, style: str):
        self.timer = timer
        self.style = style
        super().__init__()

    def render(self, task) -> Text:
        spent = timedelta(seconds=int(self.timer.time_elapsed()))
        left = timedelta(seconds=max(int(self.timer.time_remaining() or 0), 0))
        return Text(f"{spent} • {left} left", style=self.style)


class RunProgressBar(RichProgressBar):
    def configure_columns(self, trainer: L.Trainer) -> list:
        columns = super().configure_columns(trainer)
        timer = time_budget(trainer)
        if timer is None:
            return columns
        return [*columns[:3], BudgetColumn(timer, self.theme.time), *columns[4:]]

    # Lightning's hook for the label of the training bar (a private name in 2.x).
    def _get_train_description(self, current_epoch: int) -> str:
        limit = self.trainer.max_epochs
        label = f"Epoch {current_epoch}" + (f"/{limit - 1}" if limit and limit > 0 else "")
        return f"{label:{len(self.validation_description)}}"
