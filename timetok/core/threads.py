"""How many CPU threads torch may use: ``threads``, ``$TIMETOK_THREADS``, or the idle cores.

Torch starts one thread per core. On a small machine that other work shares, that
oversubscribes it: a pretraining that took 22 s on one thread took 334 s on two busy
cores. So unless told, timetok uses the cores not already busy (the cores this process
may run on, less the one-minute load average), and at least one.
"""

from __future__ import annotations

import os

from timetok.core.errors import ConfigError

ENV = "TIMETOK_THREADS"


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def idle_cores() -> int:
    """The cores this process may use, less the load already on them; at least 1."""
    cores = available_cores()
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, round(cores - busy)))


def resolve_threads(threads: int | None = None) -> int:
    """``threads`` if given, else ``$TIMETOK_THREADS``, else :func:`idle_cores`."""
    if threads is None:
        value = os.environ.get(ENV, "").strip()
        if not value:
            return idle_cores()
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"{ENV} must be a positive whole number of threads, got "
                              f"{value!r}; set it like {ENV}=2 or unset it")
        threads = int(value)
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    return threads


def use_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (see :func:`resolve_threads`); returns it."""
    import torch

    count = resolve_threads(threads)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
