"""The settings of ``timetok tokenizer train``, as one dataclass (light: the CLI reads its
defaults from it without importing torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from timetok.core.config import RunConfig
from timetok.core.errors import ConfigError


def int_levels(value: str | list[int] | tuple[int, ...]) -> list[int]:
    """Positive integers given as ``8,5,5,5`` or as a list."""
    parts = str(value).replace(",", " ").split() if isinstance(value, str) else list(value)
    if not parts or not all(str(part).isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"fsq_levels takes positive integers (e.g. 8,5,5,5), got {value!r}")
    return [int(part) for part in parts]


@dataclass
class TokenizerTrainConfig(RunConfig):
    """One tokenizer training run: data, model, optimiser and the run's budget.

    Field names are the flags of ``timetok tokenizer train`` with underscores, defaults
    its defaults. ``compression_factor`` None means 4 unless ``patch_size`` is given;
    ``num_embeddings`` None means 256 codes, or with ``fsq_levels`` their product.
    """

    dataset: str = "etth1"
    data_path: str | None = None
    data_dir: str | None = None
    context_points: int = 512
    batch_size: int = 64
    stride: int = 1  # between train windows
    val_stride: int = 1  # between validation windows
    embedding_dim: int = 64
    num_embeddings: int | None = None
    compression_factor: int | None = None
    patch_size: int | None = None
    block_hidden_size: int = 128
    num_residual_layers: int = 2
    res_hidden_size: int = 64
    quantizer: str = "vq"
    commitment_cost: float = 0.25
    decay: float = 0.9
    kmeans_init: bool = True
    rotation_trick: bool = False
    dead_code_threshold: float = 2.0
    rvq_levels: int = 2
    fsq_levels: list[int] | None = None
    revin: bool = True
    revin_affine: bool = False
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.compression_factor is not None and self.patch_size is not None:
            raise ConfigError("compression_factor and patch_size exclude each other; pass one")
        if self.compression_factor is not None or self.patch_size is not None:
            from timetok.core.nn.conv import downsampling

            downsampling(self.compression_factor, self.patch_size)
        if self.fsq_levels is not None:
            self.fsq_levels = int_levels(self.fsq_levels)
        self._check_fsq_codebook()
        for name in ("context_points", "batch_size", "stride", "val_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")

    def _check_fsq_codebook(self) -> None:
        """FSQ's codebook is the product of its levels: a num_embeddings beside fsq_levels
        that says otherwise would be ignored, so it is refused."""
        if self.quantizer != "fsq" or not self.fsq_levels or self.num_embeddings is None:
            return
        size = math.prod(self.fsq_levels)
        if self.num_embeddings != size:
            levels = ",".join(map(str, self.fsq_levels))
            raise ConfigError(f"num_embeddings {self.num_embeddings} does not fit fsq_levels "
                              f"{levels}, whose codebook holds their product, {size} codes; "
                              f"leave num_embeddings out or set it to {size}")

    @property
    def codebook_size(self) -> int:
        """``num_embeddings``, else 256, or with FSQ levels their product."""
        if self.num_embeddings is not None:
            return self.num_embeddings
        return math.prod(self.fsq_levels) if self.quantizer == "fsq" and self.fsq_levels else 256

    @property
    def run_dir(self) -> Path:
        return Path(self.save_path or f"runs/tokenizer-{self.dataset}")

    def model_config(self, n_channels: int):
        """The :class:`TokenizerConfig` of the model this run trains on ``n_channels``."""
        from timetok.tokenizer.model import TokenizerConfig

        return TokenizerConfig(
            n_channels=n_channels,
            context_points=self.context_points,
            compression_factor=4 if self.compression_factor is None else self.compression_factor,
            patch_size=self.patch_size,
            embedding_dim=self.embedding_dim,
            num_embeddings=self.codebook_size,
            block_hidden_size=self.block_hidden_size,
            num_residual_layers=self.num_residual_layers,
            res_hidden_size=self.res_hidden_size,
            quantizer=self.quantizer,
            commitment_cost=self.commitment_cost,
            decay=self.decay,
            kmeans_init=self.kmeans_init,
            rotation_trick=self.rotation_trick,
            dead_code_threshold=self.dead_code_threshold,
            rvq_levels=self.rvq_levels,
            fsq_levels=self.fsq_levels,
            revin=self.revin,
            revin_affine=self.revin_affine,
        )
