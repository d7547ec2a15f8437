"""Which torch device to run on: ``auto`` is the GPU when one is visible, else the CPU."""

from __future__ import annotations

from timetok.core.errors import ConfigError


def resolve_device(device="auto"):
    """``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1`` or a ``torch.device``) -> a
    ``torch.device``; refuses a CUDA device where none is visible."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
                          ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={str(device)!r}: no CUDA device is visible here; pass "
                          "device='cpu' or device='auto'")
    return chosen
