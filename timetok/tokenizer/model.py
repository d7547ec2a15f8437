"""System 1: a 1-D VQ-VAE that turns every channel of a series into codes and back.

Channels are handled independently by one shared network: ``[B, T, C]`` is RevIN-normalised
per window, folded to ``[B*C, 1, T]``, encoded to ``[B*C, D, T/f]``, quantised, and unfolded
to codes ``[B, T/f, C]``. ``f`` is the compression factor or the patch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from timetok.core.errors import ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.nn.conv import ConvDecoder1d, ConvEncoder1d, downsampling
from timetok.core.nn.quantizer import Quantizer, check_options
from timetok.core.nn.revin import RevIN, RevinStats
from timetok.core.outputs import ModelOutput


@dataclass(frozen=True)
class TokenizerConfig:
    """Defaults reproduce the reference run: 256 codes, compression 4, RevIN on."""

    n_channels: int = 1
    context_points: int = 512
    compression_factor: int = 4
    patch_size: int | None = None
    embedding_dim: int = 64
    num_embeddings: int = 256
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
    fsq_levels: list[int] | None = field(default=None)
    revin: bool = True
    revin_affine: bool = False

    def __post_init__(self):
        downsampling(None if self.patch_size else self.compression_factor, self.patch_size)
        if self.n_channels < 1:
            raise ConfigError(f"n_channels must be >= 1, got {self.n_channels}")
        if self.context_points % self.compression:
            what = "patch size" if self.patch_size else "compression factor"
            raise ConfigError(
                f"context of {self.context_points} steps is not divisible by the {what} "
                f"{self.compression}; use a context that is a multiple of {self.compression}"
            )
        for name in ("embedding_dim", "num_embeddings", "block_hidden_size", "res_hidden_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_residual_layers < 0:
            raise ConfigError(f"num_residual_layers must be >= 0, got {self.num_residual_layers}")
        check_options(self.quantizer, self.num_embeddings, self.decay, self.rvq_levels,
                      self.fsq_levels)

    @property
    def compression(self) -> int:
        """Time steps per code."""
        return self.patch_size or self.compression_factor


@dataclass(kw_only=True)
class TokenizerOutput(ModelOutput):
    """``loss`` is ``recon_loss + vq_loss``: the target of an autoencoder is its input."""

    reconstruction: Tensor  # [B, T, C], the input's scale
    codes: Tensor  # [B, T/f, C] ([B, T/f, C, levels] for residual VQ)
    recon_loss: Tensor  # MSE on the RevIN scale
    vq_loss: Tensor  # commitment loss (0 for FSQ)


class TokenizerModel(PretrainedModel):
    """Encode ``[B, T, C]`` series to discrete codes ``[B, T/f, C]`` and decode them back.

    >>> tok = TokenizerModel(TokenizerConfig(n_channels=3, context_points=64))
    >>> codes, stats = tok.encode(torch.randn(2, 64, 3))
    >>> tok.decode(codes, stats).shape
    torch.Size([2, 64, 3])
    """

    model_type: ClassVar[str] = "tokenizer"
    config_class: ClassVar[type] = TokenizerConfig

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        strides = downsampling(
            None if config.patch_size else config.compression_factor, config.patch_size
        )
        arch = dict(
            strides=strides,
            hidden=config.block_hidden_size,
            embedding_dim=config.embedding_dim,
            n_res_layers=config.num_residual_layers,
            res_hidden=config.res_hidden_size,
            patches=config.patch_size is not None,
        )
        self.revin = RevIN(config.n_channels, affine=config.revin_affine)
        self.encoder = ConvEncoder1d(**arch)
        self.decoder = ConvDecoder1d(**arch)
        self.quantizer = Quantizer(
            config.quantizer,
            config.embedding_dim,
            config.num_embeddings,
            commitment=config.commitment_cost,
            decay=config.decay,
            kmeans_init=config.kmeans_init,
            rotation_trick=config.rotation_trick,
            dead_code_threshold=config.dead_code_threshold,
            levels=config.rvq_levels,
            fsq_levels=config.fsq_levels,
        )

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def compression(self) -> int:
        return self.config.compression

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3:
            raise ConfigError(f"expected a [batch, time, channels] tensor, got {tuple(x.shape)}")
        if x.shape[-1] != self.config.n_channels:
            raise ConfigError(
                f"the tokenizer was trained on {self.config.n_channels} channel(s), the input "
                f"has {x.shape[-1]}; pass data with the same columns"
            )
        if x.shape[1] % self.compression:
            raise ConfigError(
                f"series length {x.shape[1]} is not divisible by the tokenizer's compression "
                f"{self.compression}; use a multiple of {self.compression}"
            )

    def normalize(self, x: Tensor) -> tuple[Tensor, RevinStats | None]:
        """RevIN per window and channel when the tokenizer uses it; ``[B, T, C]``."""
        return self.revin.normalize(x) if self.config.revin else (x, None)

    def denormalize(self, y: Tensor, stats: RevinStats | None) -> Tensor:
        return y if stats is None else self.revin.denormalize(y, stats)

    def encode_latents(self, x: Tensor) -> Tensor:
        """Normalised ``[B, T, C]`` -> continuous latents ``[B*C, T/f, D]``."""
        z = self.encoder(rearrange(x, "b t c -> (b c) 1 t"))  # (B*C, D, T/f)
        return rearrange(z, "n d t -> n t d")

    def decode_latents(self, z: Tensor, n_channels: int) -> Tensor:
        """Quantised latents ``[B*C, T/f, D]`` -> normalised series ``[B, T, C]``."""
        y = self.decoder(rearrange(z, "n t d -> n d t"))  # (B*C, 1, T)
        return rearrange(y, "(b c) 1 t -> b t c", c=n_channels)

    def forward(self, x: Tensor) -> TokenizerOutput:
        self._check(x)
        normed, stats = self.normalize(x)
        quantized, indices, vq_loss = self.quantizer(self.encode_latents(normed))
        recon = self.decode_latents(quantized, x.shape[-1])
        recon_loss = F.mse_loss(recon, normed)
        codes = rearrange(indices, "(b c) t ... -> b t c ...", c=x.shape[-1])
        return TokenizerOutput(
            loss=recon_loss + vq_loss, reconstruction=self.denormalize(recon, stats),
            codes=codes, recon_loss=recon_loss, vq_loss=vq_loss,
        )

    @torch.no_grad()
    def encode(self, x: Tensor) -> tuple[Tensor, RevinStats | None]:
        """``x: [B, T, C]`` -> codes ``[B, T/f, C]`` and the RevIN statistics to invert."""
        self._check(x)
        normed, stats = self.normalize(x)
        _, indices, _ = self.quantizer(self.encode_latents(normed))
        return rearrange(indices, "(b c) t ... -> b t c ...", c=x.shape[-1]), stats

    @torch.no_grad()
    def encode_series(self, x: Tensor, stats: RevinStats | None = None
                      ) -> tuple[Tensor, RevinStats | None]:
        """Every row of ``x: [S, T]`` as a series of its own -> codes ``[S, T/f]``.

        The channel-independent view the language model reads; the statistics are
        ``[S, 1, 1]`` and ``decode(codes[..., None], stats)`` inverts it. Given ``stats``
        (a future with its context's), RevIN uses them instead of the rows' own.
        """
        if self.config.revin_affine:
            raise ConfigError(
                "a tokenizer with per-channel RevIN weights (revin_affine=True) cannot encode "
                "channels as independent series; retrain it with revin_affine=False"
            )
        if stats is not None and self.config.revin:
            normed = self.revin.normalize_with(x[..., None], stats)
        else:
            normed, stats = self.normalize(x[..., None])
        _, indices, _ = self.quantizer(self.encode_latents(normed))
        return indices, stats

    @torch.no_grad()
    def decode(self, codes: Tensor, stats: RevinStats | None = None) -> Tensor:
        """Codes ``[B, T/f, C]`` (+ statistics from ``encode``) -> series ``[B, T, C]``."""
        n_channels = codes.shape[2]
        flat = rearrange(codes, "b t c ... -> (b c) t ...")
        recon = self.decode_latents(self.quantizer.decode_indices(flat), n_channels)
        return self.denormalize(recon, stats)
