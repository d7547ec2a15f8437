"""The training progress bar: Lightning's rich bar, made to read well on a small terminal.

Lightning's own bar counts epochs from 0 ("Epoch 1/1" for two epochs), labels a run
without an epoch limit "Epoch 0/-2", shows every metric logged to it (a column that wraps
over several lines at 80 or 120 columns) and "0.00it/s" for an epoch of one batch. This
one counts epochs from 1, prints each epoch's metrics as one line above the bar (at most
four, to four significant digits), leaves the speed blank until it is known and, under a
``max_time`` budget, shows the time spent and left and says so when the budget ends the
run mid-epoch (the bar would otherwise look aborted).
"""

from __future__ import annotations

from datetime import timedelta

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, Timer
from rich.progress import ProgressColumn
from rich.text import Text

MAX_METRICS = 4


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


class SpeedColumn(ProgressColumn):
    """Batches per second, blank until rich has measured it."""

    def __init__(self, style: str):
        self.style = style
        super().__init__()

    def render(self, task) -> Text:
        speed = task.speed
        return Text("" if not speed else f"{speed:.1f} it/s", style=self.style)


def epoch_line(epoch: int, limit: int | None, metrics: dict, monitor: str | None) -> str:
    """``epoch 2/10: train_loss 0.3452 · val_loss 0.2662 …``: the training loss and the
    monitored metric first, at most ``MAX_METRICS``, each to four significant digits."""
    values = {k.removesuffix("_epoch"): float(v) for k, v in metrics.items()
              if not k.endswith("_step")}
    first = [k for k in ("train_loss", monitor) if k in values]
    keys = list(dict.fromkeys([*first, *values]))[:MAX_METRICS]
    shown = " · ".join(f"{k} {values[k]:.4g}" for k in keys)
    of = f"/{limit}" if limit and limit > 0 else ""
    return f"epoch {epoch + 1}{of}: {shown}"


class RunProgressBar(RichProgressBar):
    def configure_columns(self, trainer: L.Trainer) -> list:
        columns = super().configure_columns(trainer)
        columns[4] = SpeedColumn(self.theme.processing_speed)
        timer = time_budget(trainer)
        if timer is None:
            return columns
        return [*columns[:3], BudgetColumn(timer, self.theme.time), *columns[4:]]

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        return {}  # each epoch's metrics are printed as one line instead (on_train_epoch_end)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._console and trainer.is_global_zero and trainer.callback_metrics:
            self._console.print(epoch_line(trainer.current_epoch, trainer.max_epochs,
                                           trainer.callback_metrics,
                                           getattr(pl_module, "monitor", None)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        timer = time_budget(trainer)
        super().on_train_end(trainer, pl_module)
        if timer is not None and (timer.time_remaining() or 0) <= 0 and self._console:
            self._console.print(f"the time budget ended the run after {trainer.global_step} "
                                f"steps, in epoch {trainer.current_epoch + 1}")

    # Lightning's hook for the label of the training bar (a private name in 2.x).
    def _get_train_description(self, current_epoch: int) -> str:
        limit = self.trainer.max_epochs
        label = f"Epoch {current_epoch + 1}" + (f"/{limit}" if limit and limit > 0 else "")
        return f"{label:{len(self.validation_description)}}"
