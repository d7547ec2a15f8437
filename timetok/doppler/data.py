"""The spectrogram generator's data: images and their users, split within each user.

One data module serves both training stages: images and their users (every user in every
split), and, once :meth:`SpectrogramDataModule.encode_with` has run a frozen tokenizer
over them, the code grids the prior learns from.

What a trained model needs to read images the way it was trained lives in the ``images``
section of its folder's ``data.json`` (:func:`write_images_section`): the image geometry
and scale, the users in id order, and where the images came from with their split, so
evaluation re-reads the same held-out images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from timetok.core.data.images import ImageSet, load_images, split_per_user
from timetok.core.errors import CheckpointError, DataError
from timetok.core.model_folder import DATA_NAME, read_data_section, write_data_section
from timetok.core.train.modules import TaskDataModule

SECTION = "images"  # the data.json section of a spectrogram model folder
VALUE_RANGE = [0.0, 1.0]  # pixel values, as every image loader returns them
ORIENTATION = "rows: Doppler bins, highest at the top; columns: time, left to right"


class SpectrogramDataModule(TaskDataModule):
    """Images of ``dataset`` (a registered name, or ``image-folder`` with ``data_path``),
    at ``image_size``, split within each user into train/val/test (``val``, ``test``
    shares, ``seed``)."""

    def __init__(self, dataset: str = "image-folder", data_path: str | None = None,
                 data_dir: str | None = None, image_size: int = 128, resize: bool = True,
                 val: float = 0.1, test: float = 0.2, seed: int = 0, batch_size: int = 32,
                 num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self._data: ImageSet | None = None
        self.index: dict[str, np.ndarray] = {}
        self.codes: torch.Tensor | None = None

    def load(self) -> ImageSet:
        """Read and split the images once (also usable outside a Trainer)."""
        if self._data is None:
            hp = self.hparams
            self._data = load_images(hp.dataset, data_dir=hp.data_dir, data_path=hp.data_path,
                                     size=hp.image_size, resize=hp.resize)
            self.index = split_per_user(self._data.users, hp.val, hp.test, hp.seed,
                                        names=self._data.user_names)
        return self._data

    @property
    def users(self) -> list[str]:
        return self.load().user_names

    def images(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A split's images ``[N, S, S]`` and user ids ``[N]``."""
        data = self.load()
        return data.images[self.index[split]], data.users[self.index[split]]

    def encode_with(self, tokenizer, batch_size: int = 64) -> None:
        """Code grids of every image by a frozen tokenizer: the prior's data from now on."""
        self.codes = tokenizer.encode_images(self.load().images, batch_size)

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def split_dataset(self, split: str) -> TensorDataset:
        data = self.load()
        rows = self.index[split]
        users = torch.from_numpy(data.users[rows]).long()
        if self.codes is not None:
            return TensorDataset(self.codes[rows], users)
        return TensorDataset(torch.from_numpy(data.images[rows]), users)

    def section(self) -> dict:
        """The ``images`` section a model trained on these data carries."""
        hp, data = self.hparams, self.load()
        return {"image_size": hp.image_size, "value_range": VALUE_RANGE,
                "orientation": ORIENTATION, "users": data.user_names,
                "dataset": hp.dataset, "data_path": hp.data_path,
                "split": {"val": hp.val, "test": hp.test, "seed": hp.seed},
                "images": {split: len(rows) for split, rows in self.index.items()}}

    def save_artifacts(self, directory: Path) -> dict:
        """The ``images`` section of ``data.json``: geometry, users, source and split."""
        section = self.section()
        write_images_section(directory, section)
        return {"dataset": section["dataset"], "users": len(section["users"]),
                "images": section["images"]}


def write_images_section(directory: str | os.PathLike, section: dict) -> Path:
    """Write the ``images`` section of ``directory/data.json``."""
    return write_data_section(directory, SECTION, section)


def read_images_section(directory: str | os.PathLike) -> dict:
    """The ``images`` section of a model folder (an older folder's ``images.json`` too);
    a CheckpointError naming ``data.json`` when the folder has none."""
    section = read_data_section(directory, SECTION, what="image geometry and users")
    missing = sorted({"image_size", "users"} - set(section))
    if missing:
        raise CheckpointError(f"{Path(directory) / DATA_NAME}: section {SECTION!r} lacks "
                              f"{', '.join(missing)}; re-export the model")
    return section


def real_splits(model_dir: str | os.PathLike, data_path: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None) -> dict[str, tuple]:
    """``{split: (images, user ids)}`` of the images a model was trained on, split as it
    was; the users' names must be the model's, in its order."""
    info = read_images_section(model_dir)
    source = data_path or info.get("data_path")
    dataset = info.get("dataset", "image-folder") if source is None else "image-folder"
    if dataset == "image-folder" and source is None:
        raise DataError(f"{model_dir} does not say where its images are; pass data_path, the "
                        "folder it was trained on")
    data = load_images(dataset, data_dir=data_dir, data_path=source, size=info["image_size"])
    if data.user_names != info["users"]:
        raise DataError(f"the images in {source or dataset} belong to users "
                        f"{data.user_names[:4]}..., the model was trained on "
                        f"{info['users'][:4]}...; pass the folder it was trained on as "
                        "data_path")
    split = info["split"]
    index = split_per_user(data.users, split["val"], split["test"], split["seed"])
    return {name: (data.images[rows], data.users[rows]) for name, rows in index.items()}


def read_generated(folder: str | os.PathLike, users: list[str], size: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A folder written by ``doppler generate``: images and the model's user ids."""
    data = load_images("image-folder", data_path=folder, size=size, resize=False)
    unknown = sorted(set(data.user_names) - set(users))
    if unknown:
        raise DataError(f"{folder} holds users the model does not know ({', '.join(unknown[:4])})"
                        "; pass a folder generated by this model")
    ids = np.array([users.index(data.user_names[u]) for u in data.users], dtype=np.int64)
    return data.images, ids
