"""1-D convolutional encoder and decoder for VQ-VAEs over single-channel series.

Two ways to compress time: strided convolutions (compression factor 4, 8, 12 or 16) whose
receptive fields overlap, or non-overlapping patches where every patch of ``patch_size``
steps becomes one latent vector on its own.
"""

from __future__ import annotations

from torch import Tensor, nn

from timetok.core.errors import ConfigError

COMPRESSION_STRIDES = {4: [2, 2], 8: [2, 2, 2], 12: [2, 2, 3], 16: [2, 2, 2, 2]}


def downsampling(compression_factor: int | None, patch_size: int | None) -> list[int]:
    """Per-layer strides; their product is the number of time steps per latent vector."""
    if patch_size is not None:
        if patch_size < 1:
            raise ConfigError(f"patch_size must be >= 1, got {patch_size}")
        return [patch_size]
    if compression_factor not in COMPRESSION_STRIDES:
        raise ConfigError(
            f"compression_factor must be one of 4, 8, 12, 16, got {compression_factor}; "
            "or use patch_size for non-overlapping patches"
        )
    return COMPRESSION_STRIDES[compression_factor]


def _kernel_padding(stride: int) -> tuple[int, int]:
    # An even stride s with kernel 2s and padding s/2 maps T to exactly T/s, both ways.
    return (2 * stride, stride // 2) if stride % 2 == 0 else (stride, 0)


class ResidualStack(nn.Module):
    """``n_layers`` residual blocks (ReLU, conv k, ReLU, conv 1) and a final ReLU."""

    def __init__(self, channels: int, hidden: int, n_layers: int, kernel: int = 3):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv1d(channels, hidden, kernel, padding=kernel // 2),
                nn.ReLU(),
                nn.Conv1d(hidden, channels, 1),
            )
            for _ in range(n_layers)
        )
        self.out = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x)
        return self.out(x)


class ConvEncoder1d(nn.Module):
    """``[N, in_channels, T]`` -> ``[N, embedding_dim, T / prod(strides)]``."""

    def __init__(
        self,
        strides: list[int],
        hidden: int,
        embedding_dim: int,
        n_res_layers: int,
        res_hidden: int,
        patches: bool = False,
        in_channels: int = 1,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, stride in enumerate(strides):
            out = hidden if i == len(strides) - 1 else max(hidden // 2, 1)
            kernel, padding = (stride, 0) if patches else _kernel_padding(stride)
            layers += [nn.Conv1d(channels, out, kernel, stride, padding), nn.ReLU()]
            channels = out
        # Patches stay independent: no kernel wider than one latent position follows.
        kernel = 1 if patches else 3
        layers.append(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2))
        self.down = nn.Sequential(*layers)
        self.res = ResidualStack(hidden, res_hidden, n_res_layers, kernel)
        self.proj = nn.Conv1d(hidden, embedding_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.res(self.down(x)))


class ConvDecoder1d(nn.Module):
    """Mirror of ``ConvEncoder1d``: ``[N, embedding_dim, T']`` -> ``[N, out_channels, T]``."""

    def __init__(
        self,
        strides: list[int],
        hidden: int,
        embedding_dim: int,
        n_res_layers: int,
        res_hidden: int,
        patches: bool = False,
        out_channels: int = 1,
    ):
        super().__init__()
        kernel = 1 if patches else 3
        self.proj = nn.Conv1d(embedding_dim, hidden, kernel, padding=kernel // 2)
        self.res = ResidualStack(hidden, res_hidden, n_res_layers, kernel)
        layers: list[nn.Module] = []
        channels = hidden
        for i, stride in enumerate(reversed(strides)):
            last = i == len(strides) - 1
            out = out_channels if last else max(hidden // 2, 1)
            kernel, padding = (stride, 0) if patches else _kernel_padding(stride)
            layers.append(nn.ConvTranspose1d(channels, out, kernel, stride, padding))
            if not last:
                layers.append(nn.ReLU())
            channels = out
        self.up = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.up(self.res(self.proj(z)))
