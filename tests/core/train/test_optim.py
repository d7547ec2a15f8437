import lightning as L
import pytest
import torch

from timetok.core.train.optim import RunProgress, adamw_cosine


def _trainer(**limits) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_checkpointing=False, **limits)


def _timer(trainer):
    from lightning.pytorch.callbacks import Timer

    return next(cb for cb in trainer.callbacks if isinstance(cb, Timer))


def test_progress_counts_steps_when_their_number_is_known():
    progress = RunProgress(_trainer(max_steps=200))
    assert progress(0) == 0.0
    assert progress(100) == pytest.approx(0.5)
    assert progress(400) == 1.0


@pytest.fixture
def frozen_clock(monkeypatch):
    """Lightning's timer reads a clock that stands still: elapsed time is what a test sets."""
    from lightning.pytorch.callbacks import timer

    monkeypatch.setattr(timer.time, "monotonic", lambda: 1000.0)


def test_progress_follows_the_time_budget_when_only_time_limits_the_run(frozen_clock):
    trainer = _trainer(max_epochs=-1, max_time={"minutes": 1})
    progress = RunProgress(trainer)
    assert progress.total_steps is None
    assert progress(10_000) == 0.0  # the clock has not started
    timer = _timer(trainer)
    timer.load_state_dict({"time_elapsed": {"train": 45.0}})  # as when resuming a run
    timer.on_train_start(trainer, None)
    assert progress(10) == 0.75


def test_cosine_reaches_its_floor_at_the_end_of_a_time_budget(frozen_clock):
    trainer = _trainer(max_epochs=-1, max_time={"minutes": 1})
    timer = _timer(trainer)
    timer.load_state_dict({"time_elapsed": {"train": 60.0}})
    timer.on_train_start(trainer, None)
    weight = torch.nn.Parameter(torch.zeros(2))
    schedule = adamw_cosine([weight], lr=1e-3, weight_decay=0.0, warmup_steps=0,
                            trainer=trainer)["lr_scheduler"]["scheduler"]
    assert schedule.get_last_lr()[0] == pytest.approx(1e-4)


def test_a_run_without_any_limit_has_no_schedule():
    with pytest.raises(ValueError, match="limit"):
        RunProgress(_trainer(max_epochs=-1))
