from types import SimpleNamespace

import lightning as L
import torch

from timetok.core.train.progress import RunProgressBar, SpeedColumn, epoch_line


def test_epochs_count_from_one_up_to_the_limit():
    bar = RunProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=2)
    assert bar._get_train_description(0).strip() == "Epoch 1/2"
    assert bar._get_train_description(1).strip() == "Epoch 2/2"


def test_a_run_without_an_epoch_limit_shows_the_epoch_alone():
    bar = RunProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1)
    assert bar._get_train_description(4).strip() == "Epoch 5"


def test_an_epoch_prints_one_line_of_at_most_four_short_metrics_loss_and_monitor_first():
    metrics = {"a": torch.tensor(1.0), "b": 2.0, "c": 5.0, "val_loss": torch.tensor(0.123456789),
               "train_loss_epoch": 3.5, "train_loss_step": 9.0}
    assert epoch_line(1, 10, metrics, "val_loss") == (
        "epoch 2/10: train_loss 3.5 · val_loss 0.1235 · a 1 · b 2")
    assert epoch_line(0, -1, {"x": 1.0}, None) == "epoch 1: x 1"


def test_the_speed_stays_blank_until_it_is_measured():
    column = SpeedColumn(style="")
    assert column.render(SimpleNamespace(speed=None)).plain == ""
    assert column.render(SimpleNamespace(speed=12.345)).plain == "12.3 it/s"


def test_the_bar_keeps_lightning_columns_with_its_own_speed():
    trainer = L.Trainer(logger=False, enable_checkpointing=False, callbacks=[RunProgressBar()])
    columns = trainer.progress_bar_callback.configure_columns(trainer)
    assert isinstance(columns[-1], SpeedColumn)
