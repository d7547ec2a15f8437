"""Toy spectrograms for the evaluation tests: each user's images carry a bright horizontal
band at a row of their own, under uniform noise."""

from __future__ import annotations

import numpy as np

SMALL = [8, 16, 32, 32]  # classifier channels: fast on one core


def band_row(user: int, users: int, size: int) -> int:
    return 2 + user * (size - 4) // max(users - 1, 1)


def bands(per_user: int, users: int = 3, size: int = 16, seed: int = 0):
    """Noisy images with a bright horizontal band at a row that depends on the user."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.4, (users * per_user, size, size))
    ids = np.repeat(np.arange(users), per_user)
    for i, user in enumerate(ids):
        row = band_row(user, users, size)
        images[i, row - 1:row + 2] += 0.5
    return images.clip(0, 1).astype(np.float32), ids
