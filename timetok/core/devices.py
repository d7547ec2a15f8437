"""Which devices to run on, refused before any work where this machine cannot give them:
:func:`resolve_device` for inference (one torch device; ``auto`` is the GPU when one is
visible, else the CPU), :func:`check_run_devices` for training (Lightning's accelerator
and device count)."""

from __future__ import annotations

import re

from timetok.core.errors import ConfigError


def resolve_device(device="auto"):
    """``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or a ``torch.device``) ->
    a ``torch.device``; refuses a device this machine does not have."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        chosen = None
    if chosen is None or chosen.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={str(device)!r}: no CUDA device is visible here; pass "
                          "device='cpu' or device='auto'")
    count = torch.cuda.device_count()
    if chosen.type == "cuda" and (chosen.index or 0) >= count:
        raise ConfigError(f"device={str(device)!r}: this machine has {count} CUDA device(s), "
                          f"cuda:0 to cuda:{count - 1}; pass one of them or device='auto'")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={str(device)!r}: no Apple GPU (MPS) is available here; pass "
                          "device='cpu' or device='auto'")
    return chosen


def accelerators() -> dict[str, int]:
    """The accelerators a run may train on here -> how many devices each offers (the CPU:
    one process per core this process may use); ``auto`` is the GPU where one is visible."""
    import torch

    from timetok.core.utils import cpu_cores

    gpus = torch.cuda.device_count()
    offered = {"auto": gpus or cpu_cores(), "cpu": cpu_cores()}
    if gpus:
        offered |= {"gpu": gpus, "cuda": gpus}
    elif torch.backends.mps.is_available():
        offered |= {"auto": 1, "mps": 1}
    return offered


def check_run_devices(accelerator: str = "auto", devices: str | int = "auto") -> None:
    """Refuse an ``accelerator`` this machine lacks, and ``devices`` it cannot give: a count
    from 1 to what the accelerator offers, ``auto``, and on GPUs ``-1`` (all) or a list of
    indices such as ``0,1``. Lightning would otherwise fail late, ask for a package, or
    start more processes than the machine can hold and hang."""
    offered = accelerators()
    if accelerator not in offered:
        raise ConfigError(f"accelerator={accelerator!r} is not available here; pass one of "
                          f"{', '.join(offered)}")
    most, text = offered[accelerator], str(devices).strip()
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and "gpu" in offered)
    if _fits(text, most, gpu):
        return
    kind = "GPU(s)" if gpu else "CPU core(s), one process each"
    also = f", -1 (all), GPU indices below {most} such as 0,1" if gpu else ""
    raise ConfigError(f"devices={text!r} does not fit accelerator={accelerator!r}, which here "
                      f"has {most} {kind}; pass a count from 1 to {most}{also} or "
                      "devices='auto'")


def _fits(devices: str, most: int, gpu: bool) -> bool:
    if devices == "auto" or (devices.isdigit() and 1 <= int(devices) <= most):
        return True
    if not gpu:
        return False
    if re.fullmatch(r"\d+(,\d+)*,?", devices) and "," in devices:  # GPU indices: 0,1 or 1,
        return all(int(i) < most for i in devices.split(",") if i)
    return devices == "-1"
