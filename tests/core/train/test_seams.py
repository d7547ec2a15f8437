"""The runner's seams, driven by a toy system the runner has never heard of."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from timetok.core.errors import TrainingError
from timetok.core.model_folder import PretrainedModel
from timetok.core.train.modules import TaskDataModule, TaskModule
from timetok.core.train.runner import RunOptions, train_and_export


@dataclass(frozen=True)
class ToyConfig:
    features: int = 3


class ToyModel(PretrainedModel):
    model_type: ClassVar[str] = "test-toy"
    config_class: ClassVar[type] = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.features, 1)


class ToyData(TaskDataModule):
    """Labelled rows; a label map travels with the model."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 3, generator=gen)
        self.y = self.x.sum(dim=1, keepdim=True)

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=32)

    def save_artifacts(self, directory):
        (directory / "labels.json").write_text(json.dumps(["low", "high"]))
        return {"classes": 2}


class ScoredModule(TaskModule):
    """Logs a validation score from a script, one per epoch; higher is better."""

    monitor: ClassVar[str] = "val_score"
    monitor_mode: ClassVar[str] = "max"
    throughput_unit: ClassVar[str] = "rows"

    def __init__(self, scores: list[float], poison_at: int | None = None):
        super().__init__()
        self.model = ToyModel(ToyConfig())
        self.scores = scores
        self.poison_at = poison_at
        self.weights_by_epoch: dict[int, torch.Tensor] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.model.linear(x), y)
        if self.global_step == self.poison_at:
            loss = loss * float("nan")
        return loss

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log("val_score", self.scores[self.current_epoch])
        self.weights_by_epoch[self.current_epoch] = self.model.linear.weight.detach().clone()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def options(**overrides) -> RunOptions:
    return RunOptions(**({"accelerator": "cpu", "devices": "1", "progress": False}
                         | overrides))


def test_a_metric_that_goes_up_picks_the_best_checkpoint_and_stops_early(tmp_path):
    scores = [0.2, 0.9, 0.5, 0.4, 0.3, 0.95]
    module = ScoredModule(scores)
    summary = train_and_export(module, ToyData(), tmp_path, options(n_epochs=6, patience=2))
    assert summary["monitor"] == "val_score"
    assert summary["best_val_score"] == pytest.approx(0.9)
    assert summary["epochs"] == 4  # stopped after two epochs without a higher score
    assert summary["exported"] == "best"
    exported = ToyModel.from_pretrained(tmp_path)
    torch.testing.assert_close(exported.linear.weight, module.weights_by_epoch[1])
    assert json.loads((tmp_path / "labels.json").read_text()) == ["low", "high"]
    assert summary["classes"] == 2  # what the data module said of itself
    assert summary["throughput_unit"] == "rows" and summary["throughput_per_s"] > 0


class ArtifactModule(ScoredModule):
    """Writes a file of its own beside the exported weights."""

    def save_artifacts(self, directory):
        assert (directory / "model.safetensors").is_file()  # after the weights
        (directory / "extra.json").write_text("{}")
        return {"extra": True}


def test_the_module_writes_its_own_artifacts_beside_the_weights(tmp_path):
    summary = train_and_export(ArtifactModule([0.5]), ToyData(), tmp_path,
                               options(n_epochs=1))
    assert (tmp_path / "extra.json").is_file() and summary["extra"] is True


def test_a_diverging_run_stops_with_an_error_and_exports_nothing(tmp_path):
    with pytest.raises(TrainingError, match="diverged at step 3"):
        train_and_export(ScoredModule([0.1] * 3, poison_at=2), ToyData(), tmp_path,
                         options(n_epochs=3))
    assert not (tmp_path / "model.safetensors").exists()
    assert not (tmp_path / "training.json").exists()
