"""A Lightning data module of sliding windows over registered series datasets."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import ConcatDataset

from timetok.core.data.series import SplitData, load_splits
from timetok.core.errors import DataError
from timetok.core.model_folder import write_data_section
from timetok.core.train.modules import TaskDataModule


class WindowDataModule(TaskDataModule):
    """Train/val/test windows of ``context_points`` (+ ``target_points``) rows.

    The scaler is fitted on the train rows only and travels with every exported model
    (the ``scaler`` section of ``data.json``). Validation and test use every window
    (stride 1, no ``drop_last``).
    ``dataset`` may name several datasets separated by commas: each is split and scaled
    on its own, and their channel-independent windows are concatenated.
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
        self.names = [name.strip() for name in dataset.split(",") if name.strip()]
        if not self.names:
            raise DataError(f"dataset names no dataset ({dataset!r}); pass one or more names "
                            "separated by commas")
        self.all_data: list[SplitData] = []

    @property
    def data(self) -> SplitData:
        """The first dataset: its scaler and columns are exported with the model."""
        return self.load()

    def load(self) -> SplitData:
        """Read and split the datasets once (also usable outside a Trainer)."""
        if not self.all_data:
            hp = self.hparams
            self.all_data = [
                load_splits(name, hp.context_points, data_dir=hp.data_dir,
                            data_path=hp.data_path)
                for name in self.names
            ]
            for split in ("train", "val", "test"):  # fail early on a too-short split
                self.windows(split)
        return self.all_data[0]

    @property
    def channels(self) -> int:
        """Channels a window holds when read jointly: the dataset's, 1 across several."""
        return self.data.n_channels if len(self.all_data) == 1 else 1

    def windows(self, split: str, channel_independent: bool | None = None):
        """A split's windows; ``channel_independent`` overrides the module's setting (several
        datasets are always read channel by channel)."""
        hp = self.hparams
        self.load()
        if channel_independent is None:
            channel_independent = hp.channel_independent
        independent = channel_independent or len(self.all_data) > 1
        parts = [
            data.windows(split, hp.context_points, hp.target_points,
                         hp.stride if split == "train" else hp.eval_stride, independent)
            for data in self.all_data
        ]
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def save_artifacts(self, directory: Path) -> dict:
        """The first dataset's train scaler (``data.json``'s ``scaler`` section) and a
        description."""
        write_data_section(directory, "scaler", self.data.scaler.to_dict())
        return {"dataset": self.hparams.dataset, "columns": self.data.columns}

    def split_dataset(self, split: str):
        return self.windows(split)
