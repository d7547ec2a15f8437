"""One quantizer factory over ``vector-quantize-pytorch``, and codebook usage statistics.

Every system builds its quantizer here, so each gets the same three kinds behind one
face: ``forward(z: [B, N, D]) -> (quantized [B, N, D], indices, loss)``.

- ``vq``: one codebook updated by exponential moving averages, initialised by k-means on
  the first batch, with codes unused for a while re-seeded from the batch (dead-code
  restart); gradients pass straight through, or by the rotation trick on request.
  Indices ``[B, N]``.
- ``rvq``: ``levels`` such codebooks, each quantising what the previous left. Indices
  ``[B, N, levels]``.
- ``fsq``: finite scalar quantisation; no codebook to learn or collapse, no loss.
- ``plain-vq``: the textbook VQ-VAE, a reference to compare against: one codebook learned
  by gradient (no EMA, no k-means, no restart). Indices ``[B, N]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from timetok.core.errors import ConfigError

QUANTIZERS = ("vq", "rvq", "fsq", "plain-vq")

# Level choices recommended by Mentzer et al. (FSQ, 2023) for codebooks of about 2^k codes.
FSQ_LEVELS = {
    256: [8, 6, 5],
    1024: [8, 5, 5, 5],
    4096: [7, 5, 5, 5, 5],
    16384: [8, 8, 8, 6, 5],
    65536: [8, 8, 8, 5, 5, 5],
}


def fsq_levels_for(codebook_size: int, levels: list[int] | None = None) -> list[int]:
    if levels:
        if any(level < 2 for level in levels):
            raise ConfigError(f"every FSQ level must be >= 2, got {levels}")
        return list(levels)
    if codebook_size not in FSQ_LEVELS:
        raise ConfigError(
            f"no standard FSQ levels for a codebook of {codebook_size}; pass fsq_levels "
            f"(e.g. 8,5,5,5) or a size among {sorted(FSQ_LEVELS)}"
        )
    return FSQ_LEVELS[codebook_size]


def check_options(kind: str, codebook_size: int, decay: float, levels: int,
                  fsq_levels: list[int] | None) -> None:
    """Raise ConfigError for settings no quantizer can be built from."""
    if kind not in QUANTIZERS:
        raise ConfigError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got {kind!r}")
    if kind == "fsq":
        fsq_levels_for(codebook_size, fsq_levels)
        return
    if codebook_size < 2:
        raise ConfigError(f"codebook size must be >= 2, got {codebook_size}")
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"EMA decay must lie in (0, 1), got {decay}")
    if kind == "rvq" and levels < 1:
        raise ConfigError(f"residual VQ needs >= 1 level, got {levels}")


class Quantizer(nn.Module):
    """A ``vq``, ``rvq``, ``fsq`` or ``plain-vq`` quantizer with fixed returns
    ``(quantized, indices, loss)``."""

    def __init__(
        self,
        kind: str,
        dim: int,
        codebook_size: int,
        *,
        commitment: float = 0.25,
        decay: float = 0.9,
        kmeans_init: bool = True,
        rotation_trick: bool = False,
        dead_code_threshold: float = 2.0,
        levels: int = 2,
        fsq_levels: list[int] | None = None,
    ):
        super().__init__()
        from vector_quantize_pytorch import FSQ, ResidualVQ, VectorQuantize

        check_options(kind, codebook_size, decay, levels, fsq_levels)
        self.kind = kind
        self.levels = levels if kind == "rvq" else 1
        vq_options = dict(
            decay=decay,
            commitment_weight=commitment,
            kmeans_init=kmeans_init,
            kmeans_iters=10,
            threshold_ema_dead_code=dead_code_threshold,
            rotation_trick=rotation_trick,
        )
        if kind == "vq":
            self.impl = VectorQuantize(dim=dim, codebook_size=codebook_size, **vq_options)
            self.codebook_size = codebook_size
        elif kind == "plain-vq":
            self.impl = VectorQuantize(
                dim=dim, codebook_size=codebook_size, commitment_weight=commitment,
                ema_update=False, learnable_codebook=True, kmeans_init=False,
                threshold_ema_dead_code=0, rotation_trick=False)
            self.codebook_size = codebook_size
        elif kind == "rvq":
            self.impl = ResidualVQ(
                dim=dim, num_quantizers=levels, codebook_size=codebook_size, **vq_options
            )
            self.codebook_size = codebook_size
        else:
            resolved = fsq_levels_for(codebook_size, fsq_levels)
            self.impl = FSQ(levels=resolved, dim=dim)
            self.codebook_size = math.prod(resolved)
        self.restarts = 0  # codes re-seeded by dead-code restart since construction
        for layer in [] if kind == "fsq" else self.impl.layers if kind == "rvq" else [self.impl]:
            self._count_restarts(layer._codebook)

    def _count_restarts(self, codebook: nn.Module) -> None:
        """Wrap the library's code replacement so each re-seeded code is counted (it
        re-seeds at most one code per batch vector, deferring the rest)."""
        replace = codebook.replace

        def counting(batch_samples, batch_mask, seq_mask=None):
            vectors = batch_samples.shape[-2] if seq_mask is None else int(seq_mask.sum())
            self.restarts += int(batch_mask.sum(dim=-1).clamp(max=vectors).sum())
            return replace(batch_samples, batch_mask, seq_mask)

        codebook.replace = counting

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``z: [B, N, D]`` -> quantized ``[B, N, D]``, indices, scalar loss.

        Always in float32: under mixed precision a nearest-code search in bf16 or fp16
        picks another code for a share of vectors (the library turns autocast off on
        CUDA only)."""
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            if self.kind == "fsq":
                quantized, indices = self.impl(z)
                return quantized, indices, z.new_zeros(())
            quantized, indices, loss = self.impl(z)
            return quantized, indices, loss.sum()

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Indices as returned by ``forward`` -> quantized vectors ``[..., D]``."""
        if self.kind == "fsq":
            return self.impl.indices_to_codes(indices)
        return self.impl.get_output_from_indices(indices)

    @property
    def codebook(self) -> Tensor:
        """The vectors behind level-0 indices, ``[codebook_size, D]`` in the input space."""
        if self.kind == "fsq":
            return self.impl.project_out(self.impl.implicit_codebook)
        if self.kind == "rvq":
            return self.impl.layers[0].codebook
        return self.impl.codebook


class CodeUsage:
    """Counts code occurrences over an epoch: usage, perplexity, entropy, dead codes.

    For residual VQ the counts are per level and the figures averaged over levels.
    """

    def __init__(self, codebook_size: int, levels: int = 1):
        self.codebook_size = codebook_size
        self.levels = levels
        self.counts = torch.zeros(levels, codebook_size, dtype=torch.long)

    def reset(self) -> None:
        self.counts.zero_()

    def update(self, indices: Tensor) -> None:
        # Counted where the codes are: a copy to the host would sync the GPU every step.
        flat = indices.detach().reshape(-1, self.levels)
        self.counts = self.counts.to(flat.device)
        for level in range(self.levels):
            self.counts[level] += torch.bincount(flat[:, level], minlength=self.codebook_size)

    def compute(self, counts: Tensor | None = None) -> dict[str, float]:
        counts = (self.counts if counts is None else counts).cpu()
        total = counts.sum(dim=1, keepdim=True).clamp_min(1)
        p = counts.double() / total
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)  # nats, per level
        used = (counts > 0).sum(dim=1).double()
        return {
            "usage": float((used / self.codebook_size).mean()),
            "perplexity": float(torch.exp(entropy).mean()),
            "entropy_bits": float((entropy / math.log(2)).mean()),
            "dead_codes": float((self.codebook_size - used).mean()),
        }
