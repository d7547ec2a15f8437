"""The settings of ``timetok tokenizer train``, as one dataclass (light: the CLI reads its
defaults from it without importing torch)."""

from __future__ import annotations

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
    its defaults. ``compression_factor`` None means 4 unless ``patch_size`` is given.
    """

    dataset: str = "etth1"
    data_path: str | None = None
    data_dir: str | None = None
    context_points: int = 512
    batch_size: int = 64
    stride: int = 1  # between train windows
    val_stride: int = 1  # between validation windows
    embedding_dim: int = 64
    num_embeddings: int = 256
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
        if self.fsq_levels is not None:
            self.fsq_levels = int_levels(self.fsq_levels)
        for name in ("context_points", "batch_size", "stride", "val_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")

    @property
    def run_dir(self) -> Path:
        return Path(self.save_path or f"runs/tokenizer-{self.dataset}")

    def model_config(self, n_channels: int):
        """The :class:`TokenizerConfig` of the model this run trains on ``n_channels``."""
        from timetok.tokenizer.model import TokenizerConfig

        return TokenizerConfig(
            n_channels=n_channels,
            context_points=self.context_points,
            compression_factor=self.compression_factor or 4,
            patch_size=self.patch_size,
            embedding_dim=self.embedding_dim,
            num_embeddings=self.num_embeddings,
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
