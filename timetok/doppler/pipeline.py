"""``SpectrogramGenerator``: the user-facing API over a trained spectrogram generator.

Draws spectrograms of chosen users, turns images into code grids and back. Images are on
their original scale, as the loaders return them: ``[N, S, S]`` (or one ``[S, S]``) floats
in [0, 1], rows Doppler bins (highest at the top), columns time. numpy arrays, torch
tensors and pandas DataFrames (one image) come back as what they were.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from timetok.core.devices import resolve_device
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import DATA_NAME
from timetok.core.utils import is_dataframe
from timetok.doppler.config import resolve_generator
from timetok.doppler.data import read_images_section, write_images_section
from timetok.doppler.metrics import check_images
from timetok.doppler.model import GeneratorModel


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "pt"
    if is_dataframe(value):
        return "pd"
    return "np"


def _restore(result: torch.Tensor, kind: str, like: Any, single: bool):
    """``result`` as the kind of ``like`` it answers (one item where ``like`` was one)."""
    result = result[0] if single else result
    if kind == "pt":
        return result.to(like.device)
    array = result.numpy()
    if kind == "pd":
        import pandas as pd

        return pd.DataFrame(array)
    return array


class SpectrogramGenerator:
    """Spectrograms of chosen users from a trained generator, and its tokenizer's codes.

    >>> gen = SpectrogramGenerator.from_pretrained("runs/doppler")  # doctest: +SKIP
    >>> gen.generate(users=[0, "user05"], n=10).shape  # doctest: +SKIP
    (20, 128, 128)
    >>> gen.encode(images).shape  # images [N, 128, 128] in [0, 1]  # doctest: +SKIP
    (N, 32, 32)
    """

    def __init__(self, model: GeneratorModel, images: dict):
        users, size = images.get("users"), images.get("image_size")
        if users != model.config.users or size != model.config.tokenizer.image_size:
            raise CheckpointError(
                f"the images section of {DATA_NAME} ({len(users or [])} users, {size} px) "
                f"does not match the model ({model.n_users} users, "
                f"{model.config.tokenizer.image_size} px); re-export the model")
        self.model = model.eval()
        self.images = images

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto"
                        ) -> SpectrogramGenerator:
        """A generator folder (or the ``save_path`` of ``timetok doppler train``): its
        weights and the ``images`` section of its ``data.json``."""
        folder = resolve_generator(path)
        model = GeneratorModel.from_pretrained(folder, resolve_device(device))
        return cls(model, read_images_section(folder))

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the weights, ``config.json`` and ``data.json``: a folder
        :meth:`from_pretrained` reads back."""
        path = self.model.save_pretrained(path)
        write_images_section(path, self.images)
        return path

    @property
    def users(self) -> list[str]:
        """The users' names, in id order."""
        return list(self.model.config.users)

    @property
    def image_size(self) -> int:
        return self.model.config.tokenizer.image_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, users: int | str | Sequence[int | str] | None = None, n: int = 1, *,
                 guidance: float | None = None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 unconditional: bool = False, batch_size: int = 64, use_cache: bool = True,
                 return_tensors: str = "np"):
        """``n`` images of each of ``users`` (ids or names; None: every user), ``n``
        consecutive per user: ``[U * n, S, S]`` floats in [0, 1], a numpy array or, with
        ``return_tensors="pt"``, a torch tensor. ``guidance`` > 1 pushes each image towards
        its user (classifier-free guidance); ``seed`` makes the draw repeatable;
        ``unconditional`` draws after the null prefix (no user) instead."""
        from timetok.core.nn.sampling import Sampling

        if return_tensors not in ("np", "pt"):
            raise ConfigError(f"return_tensors must be 'np' or 'pt', got {return_tensors!r}")
        if users is None:
            users = list(range(self.model.n_users))
        elif isinstance(users, int | str):
            users = [users]
        sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
        codes = self.model.generate_codes(list(users), n, sampling, guidance, use_cache, seed,
                                          batch_size, unconditional)
        images = torch.cat([self.model.tokenizer.decode(c) for c in codes.split(batch_size)])
        images = images.float().cpu()
        return images if return_tensors == "pt" else images.numpy()

    def _images(self, images: Any) -> tuple[torch.Tensor, bool]:
        """``images`` as a float32 batch ``[N, S, S]`` on the model's device, and whether
        one image was given; a DataError naming the fix otherwise."""
        if isinstance(images, torch.Tensor):
            array = images.detach().cpu().numpy()
        else:
            array = np.asarray(images)
        size = self.image_size
        single = array.ndim == 2
        batch = array[None] if single else array
        if batch.ndim != 3 or batch.shape[1:] != (size, size) or len(batch) == 0:
            raise DataError(f"images must be [N, {size}, {size}] or one [{size}, {size}] image, "
                            f"got shape {tuple(array.shape)}; resize them to the model's "
                            f"{size} px (load_images(..., size={size}) does)")
        return torch.from_numpy(check_images(batch, "images")).to(self.device), single

    def _codes(self, codes: Any) -> tuple[torch.Tensor, bool]:
        """``codes`` as an int64 batch ``[N, g, g]`` on the model's device."""
        array = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else (
            np.asarray(codes))
        grid, size = self.model.config.tokenizer.grid, self.model.tokenizer.codebook_size
        single = array.ndim == 2
        batch = array[None] if single else array
        if batch.ndim != 3 or batch.shape[1:] != (grid, grid) or len(batch) == 0:
            raise DataError(f"codes must be [N, {grid}, {grid}] or one [{grid}, {grid}] grid, "
                            f"got shape {tuple(array.shape)}; pass grids from encode()")
        if not np.issubdtype(batch.dtype, np.integer) or batch.min() < 0 or batch.max() >= size:
            raise DataError(f"codes must be integers in [0, {size}); pass grids from "
                            "encode() or generate")
        return torch.from_numpy(batch.astype(np.int64)).to(self.device), single

    @torch.no_grad()
    def encode(self, images: Any, batch_size: int = 64):
        """Images ``[N, S, S]`` (or one ``[S, S]``) in [0, 1] -> code grids ``[N, g, g]``
        (or one ``[g, g]``), as the kind given."""
        batch, single = self._images(images)
        codes = torch.cat([self.model.tokenizer.encode(chunk).cpu()
                           for chunk in batch.split(batch_size)])
        return _restore(codes, _kind(images), images, single)

    @torch.no_grad()
    def decode(self, codes: Any, batch_size: int = 64):
        """Code grids ``[N, g, g]`` (or one ``[g, g]``) -> images ``[N, S, S]`` in [0, 1]
        (or one), as the kind given."""
        batch, single = self._codes(codes)
        images = torch.cat([self.model.tokenizer.decode(chunk).float().cpu()
                            for chunk in batch.split(batch_size)])
        return _restore(images, _kind(codes), codes, single)

    def reconstruct(self, images: Any, batch_size: int = 64):
        """``decode(encode(images))``: what the tokenizer keeps of each image."""
        return self.decode(self.encode(images, batch_size), batch_size)
