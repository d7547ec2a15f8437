"""Generated series for tests: a mixture of sinusoids, random walks and offsets."""

import torch


def mixture(n: int, length: int = 64, channels: int = 1, seed: int | None = None) -> torch.Tensor:
    """``[n, length, channels]`` windows of varied frequency, phase, amplitude and drift."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    t = torch.arange(length).float()

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    freq = rand(n, 1, channels) * 0.3 + 0.02
    phase = rand(n, 1, channels) * 6.28
    amp = rand(n, 1, channels) * 2 + 0.5
    walk = torch.cumsum(torch.randn(n, length, channels, generator=gen) * 0.05, dim=1)
    offset = torch.randn(n, 1, channels, generator=gen)
    return amp * torch.sin(freq * t[None, :, None] + phase) + walk + offset
