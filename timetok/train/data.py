"""A Lightning data module of sliding windows over any registered dataset."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from timetok.data.series import SplitData, load_splits


class WindowDataModule(L.LightningDataModule):
    """Train/val/test windows of ``context_points`` (+ ``target_points``) rows.

    The scaler is fitted on the train rows only; ``self.data.scaler`` travels with every
    exported model. Validation and test use every window (stride 1, no ``drop_last``).
    """

    def __init__(
        self,
        dataset: str,
        context_points: int,
        target_points: int = 0,
        batch_size: int = 64,
        stride: int = 1,
        channel_independent: bool = False,
        data_dir: str | None = None,
        data_path: str | None = None,
        num_workers: int = 0,
        eval_stride: int = 1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data: SplitData | None = None

    def load(self) -> SplitData:
        """Read and split the dataset once (also usable outside a Trainer)."""
        if self.data is None:
            hp = self.hparams
            self.data = load_splits(
                hp.dataset, hp.context_points, data_dir=hp.data_dir, data_path=hp.data_path
            )
            for split in ("train", "val", "test"):  # fail early on a too-short split
                self.windows(split)
        return self.data

    def windows(self, split: str):
        hp = self.hparams
        return self.load().windows(
            split,
            hp.context_points,
            hp.target_points,
            hp.stride if split == "train" else hp.eval_stride,
            hp.channel_independent,
        )

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.windows(split),
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
