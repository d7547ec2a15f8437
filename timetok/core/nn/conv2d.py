"""2-D convolutional encoder and decoder for VQ-VAEs over images (spectrograms).

Our own blocks rather than ``diffusers``' (the reference's choice): the same pattern — a
stride-2 stem, residual blocks (GroupNorm, SiLU, 3×3 convolutions) and stride-2
convolutions between resolutions — in a few dozen lines, without a dependency whose
pinned versions the reference had to fight. Each of the ``len(channels)`` resolutions
halves the image, so an ``S × S`` image becomes a ``S / 2**len(channels)`` grid.
"""

from __future__ import annotations

from torch import Tensor, nn

from timetok.core.errors import ConfigError


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock2d(nn.Module):
    """``x + conv(SiLU(norm(conv(SiLU(norm(x))))))``, with a 1×1 projection when the channel
    count changes."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            _norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1),
            _norm(out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = (nn.Identity() if in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


def check_channels(channels: list[int], size: int) -> None:
    """Refuse channel lists and image sizes no encoder can be built for."""
    if not channels or any(c < 1 for c in channels):
        raise ConfigError(f"channels must be a non-empty list of positive widths, got {channels}")
    factor = 2 ** len(channels)
    if size % factor:
        raise ConfigError(
            f"image size {size} is not divisible by {factor} (2 to the number of resolutions, "
            f"{len(channels)}); use a size that is a multiple of {factor} or fewer channels"
        )


class ConvEncoder2d(nn.Module):
    """``[N, in_channels, S, S]`` -> ``[N, embedding_dim, S / 2**L, S / 2**L]``, L =
    ``len(channels)``."""

    def __init__(self, channels: list[int], embedding_dim: int, n_res_layers: int = 1,
                 in_channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 4, 2, 1)]
        width = channels[0]
        for i, out in enumerate(channels):
            layers += [ResBlock2d(width if j == 0 else out, out) for j in range(n_res_layers)]
            width = out if n_res_layers else width
            if i + 1 < len(channels):
                layers.append(nn.Conv2d(width, channels[i + 1], 4, 2, 1))
                width = channels[i + 1]
        layers += [_norm(width), nn.SiLU(), nn.Conv2d(width, embedding_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDecoder2d(nn.Module):
    """Mirror of :class:`ConvEncoder2d`: latents ``[N, embedding_dim, s, s]`` ->
    ``[N, out_channels, s * 2**L, s * 2**L]``."""

    def __init__(self, channels: list[int], embedding_dim: int, n_res_layers: int = 1,
                 out_channels: int = 1):
        super().__init__()
        widths = list(reversed(channels))
        layers: list[nn.Module] = [nn.Conv2d(embedding_dim, widths[0], 3, padding=1)]
        for i, width in enumerate(widths):
            layers += [ResBlock2d(width, width) for _ in range(n_res_layers)]
            if i + 1 < len(widths):
                layers.append(nn.ConvTranspose2d(width, widths[i + 1], 4, 2, 1))
        layers += [_norm(widths[-1]), nn.SiLU(),
                   nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class PatchDiscriminator2d(nn.Module):
    """A patch critic: ``[N, in_channels, S, S]`` -> logits ``[N, 1, S / 2**L, S / 2**L]``,
    one per overlapping patch, L = ``len(channels)`` stride-2 convolutions (LeakyReLU,
    GroupNorm after the first). It judges local texture, which a pixel loss averages away."""

    def __init__(self, channels: list[int], in_channels: int = 1):
        super().__init__()
        check_channels(channels, 2 ** len(channels))
        layers: list[nn.Module] = []
        width = in_channels
        for i, out in enumerate(channels):
            layers.append(nn.Conv2d(width, out, 4, 2, 1))
            if i:
                layers.append(_norm(out))
            layers.append(nn.LeakyReLU(0.2))
            width = out
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
