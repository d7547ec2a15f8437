"""The user classifier: the judge behind every figure of a generator's evaluation.

A small CNN learns to tell users apart from real training images; its accuracy on
generated images says whether they keep each user's signature, and its penultimate layer
gives the features the distances of :mod:`timetok.doppler.metrics` are measured on. It
trains through the shared runner (:func:`train_classifier`: random time rolls and gain
changes, the weights of the best validation accuracy exported) and is saved as any
timetok model: ``config.json`` + ``model.safetensors``, with the run's ``training.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from timetok.core.data.images import split_per_user
from timetok.core.errors import DataError
from timetok.core.model_folder import PretrainedModel
from timetok.core.outputs import ClassifierOutput
from timetok.core.train.modules import TaskDataModule, TaskModule
from timetok.doppler.metrics import check_images, check_users

INPUT_SIDE = 64  # images are pooled down to at most this side before the CNN
CHANNELS = [32, 64, 128, 128]


@dataclass(frozen=True)
class UserClassifierConfig:
    """``num_users`` classes; ``seen_users``: the ids it saw in training (None: all)."""

    num_users: int
    channels: list[int] = field(default_factory=lambda: list(CHANNELS))
    seen_users: list[int] | None = None

    def __post_init__(self):
        if self.num_users < 1 or not self.channels or min(self.channels) < 1:
            raise DataError(f"a user classifier needs num_users >= 1 and positive channels, "
                            f"got {self.num_users} and {list(self.channels)}; pass real "
                            "users' images")


class UserClassifier(PretrainedModel):
    """A small CNN telling users apart from spectrograms; its pooled features (the
    penultimate layer, ``channels[-1]`` wide) are what the distances are measured on.
    Images larger than ``INPUT_SIDE`` are average-pooled down to it first: cadence, speed
    and limb extent survive, and a 128 x 128 set trains four times faster.

    >>> clf = UserClassifier(UserClassifierConfig(3, channels=[4, 8]))
    >>> clf(torch.rand(2, 32, 32), torch.tensor([0, 2])).logits.shape
    torch.Size([2, 3])
    """

    model_type: ClassVar[str] = "doppler-user-classifier"
    config_class: ClassVar[type] = UserClassifierConfig

    def __init__(self, config: UserClassifierConfig):
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        width = 1
        for out in config.channels:
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False),
                       nn.GroupNorm(min(8, out), out), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            width = out
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, config.num_users)
        self.history: dict[str, Any] = {}  # its training run's summary, where known

    @property
    def num_users(self) -> int:
        return self.config.num_users

    @property
    def feature_dim(self) -> int:
        return self.config.channels[-1]

    @property
    def seen_users(self) -> list[int]:
        seen = self.config.seen_users
        return list(range(self.num_users)) if seen is None else sorted(seen)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, H, W]`` images to ``[B, D]`` features."""
        x = images.unsqueeze(1) - 0.5
        if max(x.shape[-2:]) > INPUT_SIDE:
            x = F.adaptive_avg_pool2d(x, (min(x.shape[-2], INPUT_SIDE),
                                          min(x.shape[-1], INPUT_SIDE)))
        return self.body(x)

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None
                ) -> ClassifierOutput:
        """``[B, H, W]`` images to logits ``[B, num_users]``; the cross-entropy against the
        user ids ``targets`` ``[B]`` where given."""
        embedding = self.embed(images)
        logits = self.head(embedding)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return ClassifierOutput(loss=loss, logits=logits, embedding=embedding)

    @torch.no_grad()
    def _batched(self, images: np.ndarray, fn, batch_size: int) -> np.ndarray:
        images = check_images(images, "images")
        self.eval()
        device = next(self.parameters()).device
        return torch.cat([fn(torch.from_numpy(images[i:i + batch_size]).to(device)).cpu()
                          for i in range(0, len(images), batch_size)]).numpy()

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The most likely user of each image ``[N, H, W]``: ``[N]`` ints."""
        return self._batched(images, lambda x: self(x).logits.argmax(-1), batch_size)

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Penultimate-layer features ``[N, D]`` (float32) of images ``[N, H, W]``."""
        return self._batched(images, self.embed, batch_size)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> UserClassifier:
        """A classifier folder (its weights and, where there is one, its ``training.json``),
        in eval mode on the CPU."""
        model = cls.from_pretrained(directory)
        summary = Path(directory) / "training.json"
        if summary.is_file():
            model.history = json.loads(summary.read_text())
        return model


def augment(images: torch.Tensor) -> torch.Tensor:
    """Roll each image ``[B, H, W]`` along time (up to 1/8 of the width) and scale its gain
    by 0.9-1.1; the Doppler axis is left alone (its sign is the direction of motion)."""
    n, _, width = images.shape
    limit = max(width // 8, 1)
    device = images.device
    shifts = torch.randint(-limit, limit + 1, (n, 1), device=device)
    columns = (torch.arange(width, device=device)[None] - shifts) % width
    rolled = images.gather(2, columns[:, None, :].expand_as(images))
    gain = 0.9 + 0.2 * torch.rand(n, 1, 1, device=device)
    return (rolled * gain).clamp(0, 1)


class ClassifierDataModule(TaskDataModule):
    """Real images and their users, ``val_fraction`` of each user's held out (drawn with
    ``seed``) to pick the best epoch."""

    def __init__(self, images: np.ndarray, users: np.ndarray, val_fraction: float = 0.15,
                 seed: int = 0, batch_size: int = 16, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters(ignore=["images", "users"])
        self.images = torch.from_numpy(check_images(images, "images"))
        self.users = torch.from_numpy(check_users(users, len(images), "users"))
        self.index = split_per_user(self.users.numpy(), val=val_fraction, test=0, seed=seed)

    def split_dataset(self, split: str) -> TensorDataset:
        rows = torch.from_numpy(self.index[split])
        return TensorDataset(self.images[rows], self.users[rows])

    def save_artifacts(self, directory: Path) -> dict:
        return {"train_images": len(self.index["train"]),
                "validation_images": len(self.index["val"])}


class ClassifierModule(TaskModule):
    """Cross-entropy of augmented real images; validation accuracy picks the weights."""

    monitor: ClassVar[str] = "val_accuracy"
    monitor_mode: ClassVar[str] = "max"
    throughput_unit: ClassVar[str] = "images"
    progress_metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy")

    def __init__(self, config: dict, lr: float = 5e-4, weight_decay: float = 0.01,
                 warmup_steps: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model = UserClassifier(UserClassifierConfig(**config))

    def step(self, batch: Any, stage: str, batch_idx: int) -> torch.Tensor:
        images, users = batch
        if stage == "train":
            images = augment(images)
        out = self.model(images, users)
        accuracy = (out.logits.argmax(-1) == users).float().mean()
        self.log_values(stage, {"loss": out.loss, "accuracy": accuracy}, len(images))
        return out.loss


def train_classifier(images: np.ndarray, users: np.ndarray, out_dir: str | os.PathLike,
                     options, *, channels: list[int] = CHANNELS, val_fraction: float = 0.15,
                     batch_size: int = 16, lr: float = 5e-4) -> UserClassifier:
    """A user classifier trained on real ``images`` ``[N, H, W]`` of ``users`` ``[N]``
    through the shared runner with ``options`` (its epochs, seed, device), exported to
    ``out_dir`` (the weights of the best validation accuracy; no checkpoints kept). Its
    random draws come from the generators the calling recipe seeded (``begin``)."""
    from timetok.core.train.runner import train_and_export

    data = ClassifierDataModule(images, users, val_fraction, options.seed, batch_size)
    config = {"num_users": int(data.users.max()) + 1, "channels": list(channels),
              "seen_users": sorted(int(u) for u in data.users.unique())}
    module = ClassifierModule(config, lr=lr)
    out_dir = Path(out_dir)
    summary = train_and_export(module, data, out_dir, options, resumable=False)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    classifier = module.model.eval()
    classifier.history = summary
    return classifier
