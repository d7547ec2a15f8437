"""What generated spectrograms are measured by: distances between feature sets, diversity,
memorisation tests, and the tokenizer's own figures (reconstruction, codebook use).

Images are float arrays ``[N, H, W]`` in [0, 1] (rows: Doppler, columns: time); user ids
are integers 0..U-1; features are ``[N, D]`` rows (a user classifier's penultimate layer,
or flattened pixels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from timetok.core.errors import DataError

CHUNK_BYTES = 64 * 2**20  # memory for one block of a distance matrix


def check_images(images: Any, name: str) -> np.ndarray:
    """``images`` as a float32 array ``[N, H, W]`` in [0, 1], or a DataError naming ``name``."""
    array = np.asarray(images)
    if array.ndim != 3 or len(array) == 0:
        raise DataError(f"{name} must be a non-empty array [N, H, W], got shape "
                        f"{array.shape}; pass grayscale images stacked along the first axis")
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{name} must hold floats in [0, 1], got dtype {array.dtype}; "
                        "scale the images to [0, 1] as floats (divide 8-bit pictures by 255)")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise DataError(f"{name} must hold finite values in [0, 1], got "
                        f"[{np.nanmin(array):.4g}, {np.nanmax(array):.4g}]; scale or clip "
                        "the images to [0, 1]")
    return array.astype(np.float32, copy=False)


def check_users(users: Any, count: int, name: str) -> np.ndarray:
    """``users`` as an int64 array of ``count`` ids >= 0, or a DataError naming ``name``."""
    array = np.asarray(users)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{name} must be a 1-D array of integer user ids, got shape "
                        f"{array.shape} and dtype {array.dtype}; pass one integer id per image")
    if len(array) != count:
        raise DataError(f"{name} has {len(array)} ids for {count} images; pass one user id "
                        "per image")
    if array.size and array.min() < 0:
        raise DataError(f"{name} holds negative ids ({int(array.min())}); number users 0..U-1")
    return array.astype(np.int64)


def check_features(features: Any, name: str, min_rows: int = 1) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise DataError(f"{name} must be a 2-D array [N, D], got shape {array.shape}; "
                        "pass one feature row per sample")
    if len(array) < min_rows:
        raise DataError(f"{name} has {len(array)} samples, at least {min_rows} are needed; "
                        "pass more samples")
    if not np.isfinite(array).all():
        raise DataError(f"{name} holds NaN or infinite values; drop or fix those rows")
    return array


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues,
    rounding errors, clipped to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` ``[N, D]``:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), real by construction."""
    a = check_features(a, "the first feature set", min_rows=2)
    b = check_features(b, "the second feature set", min_rows=2)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"feature sets have {a.shape[1]} and {b.shape[1]} dimensions; pass "
                        "features from the same extractor")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    mean_term = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    return max(mean_term + float(np.trace(cov_a) + np.trace(cov_b) - 2 * cross), 0.0)


def _distance_blocks(query: np.ndarray, reference: np.ndarray):
    """Yield ``(start, distances)``: Euclidean distances of a block of query rows to every
    reference row, blocks sized so that each holds about ``CHUNK_BYTES``."""
    ref_norms = (reference**2).sum(1)
    rows = max(1, CHUNK_BYTES // (8 * max(len(reference), query.shape[1])))
    for start in range(0, len(query), rows):
        block = query[start:start + rows]
        squared = (block**2).sum(1)[:, None] + ref_norms[None] - 2 * block @ reference.T
        yield start, np.sqrt(squared.clip(min=0))


def _nearest(query: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each query row's nearest reference row: its index, and the exact distance to it."""
    query = check_features(query, "query")
    reference = check_features(reference, "reference")
    if query.shape[1] != reference.shape[1]:
        raise DataError(f"query has {query.shape[1]} dimensions, reference "
                        f"{reference.shape[1]}; pass features from the same extractor")
    index = np.concatenate([d.argmin(1) for _, d in _distance_blocks(query, reference)])
    return index, np.sqrt(((query - reference[index]) ** 2).sum(1))


def nearest_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each ``query`` row's Euclidean distance to its nearest ``reference`` row, ``[Nq]``."""
    return _nearest(query, reference)[1]


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all distinct pairs of rows (diversity)."""
    features = check_features(features, "features", min_rows=2)
    total = 0.0
    for start, distances in _distance_blocks(features, features):
        distances[np.arange(len(distances)), start + np.arange(len(distances))] = 0.0
        total += distances.sum()
    n = len(features)
    return float(total / (n * (n - 1)))


def memorisation(generated_to_train: np.ndarray, test_to_train: np.ndarray,
                 quantile: float = 0.05, *, tolerance: float | None = None
                 ) -> dict[str, Any]:
    """Do generated images lie closer to the training images than real unseen ones do?

    ``generated_to_train`` and ``test_to_train`` are nearest-training-image distances.
    Counts the share of generated images below the ``quantile`` of the real test images'
    distances (about ``quantile`` when the generator does not copy); memorised when the
    share exceeds ``tolerance`` (default twice ``quantile``). Where generated images are
    smoother than real ones, they can lie closer to any image without copying: in pixel
    space use :func:`nearer_train`.
    """
    generated = np.asarray(generated_to_train, dtype=np.float64).ravel()
    test = np.asarray(test_to_train, dtype=np.float64).ravel()
    if len(generated) == 0 or len(test) == 0:
        raise DataError("memorisation needs distances of generated and of real test images; "
                        "pass non-empty arrays")
    if not 0 < quantile < 1:
        raise DataError(f"quantile must lie in (0, 1), got {quantile}; pass e.g. 0.05")
    tolerance = 2 * quantile if tolerance is None else tolerance
    threshold = float(np.quantile(test, quantile))
    share = float((generated < threshold).mean())
    memorised = share > tolerance
    verdict = "no memorised copies" if not memorised else (
        f"possible memorisation: {share:.1%} of generated images lie closer to the training "
        f"images than the closest {quantile:.0%} of real test images")
    return {"quantile": quantile, "threshold": threshold, "share_below": share,
            "tolerance": tolerance, "median_generated": float(np.median(generated)),
            "median_test": float(np.median(test)), "memorised": memorised,
            "verdict": verdict}


def nearer_train(generated: Any, train: Any, test: Any, train_users: Any, test_users: Any,
                 *, margin: float = 0.1, copy_threshold: float = 1e-3) -> dict[str, Any]:
    """Are generated images nearer the training images than unseen real images of the same
    users? A test that a smooth generator passes: closeness alone is not evidence.

    Finds each generated image's nearest real image among the training and test images
    together, and asks how many of these distinct nearest images are training images. Each
    user's images were split into training and test at random, so a generator that treats
    both alike, however blurred its images, finds training images as often as the split
    holds them (a permutation test: the expected share is the training share of each found
    image's user). A generator that copies or overfits its training images finds more.
    Reports the share found, the share expected, and the excess as a fraction of what lies
    above the expectation (0: chance; 1: always a training image). Memorised when the
    excess exceeds ``margin`` and the share the expectation by three standard errors, or
    when any generated image is a near-exact copy of a training image (mean absolute
    difference to it below ``copy_threshold``).
    """
    generated = check_features(np.asarray(generated).reshape(len(generated), -1), "generated")
    train = check_features(np.asarray(train).reshape(len(train), -1), "train")
    test = check_features(np.asarray(test).reshape(len(test), -1), "test")
    train_users = check_users(train_users, len(train), "train_users")
    test_users = check_users(test_users, len(test), "test_users")
    if not np.intersect1d(train_users, test_users).size:
        raise DataError("no user has both training and test images; pass real images of the "
                        "same users on both sides")
    users = np.concatenate([train_users, test_users])
    train_share = (np.bincount(train_users, minlength=users.max() + 1)
                   / np.maximum(np.bincount(users), 1))
    real = np.concatenate([train, test])
    index, _ = _nearest(generated, real)
    found = np.unique(index)
    expected = train_share[users[found]]
    share, expected_share = float((found < len(train)).mean()), float(expected.mean())
    excess = (share - expected_share) / max(1 - expected_share, 1e-12)
    z = (share - expected_share) * len(found) / max(np.sqrt((expected * (1 - expected)).sum()),
                                                    1e-12)
    differences = np.abs(generated - real[index]).mean(1)
    copies = int(((index < len(train)) & (differences < copy_threshold)).sum())
    memorised = (excess > margin and z > 3) or bool(copies)
    if not memorised:
        verdict = "no memorised copies"
    elif copies:
        verdict = f"memorised: {copies} near-exact copies of training images"
    else:
        verdict = (f"possible memorisation: {share:.1%} of the real images nearest to "
                   f"generated ones are training images, {expected_share:.1%} without copying")
    return {"train_images": len(train), "test_images": len(test),
            "nearest_real_images": len(found), "share_nearest_train": share,
            "expected_share": expected_share, "excess": float(excess), "z": float(z),
            "margin": margin, "near_exact_copies": copies, "copy_threshold": copy_threshold,
            "memorised": memorised, "verdict": verdict}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``; None where either is missing or the denominator 0."""
    if numerator is None or not denominator:
        return None
    return float(numerator / denominator)


def accuracy(predicted: np.ndarray, users: np.ndarray) -> float:
    return float((predicted == users).mean())


def diversity(features: np.ndarray) -> float | None:
    """Mean pairwise distance of ``features``; None for fewer than two rows."""
    return mean_pairwise_distance(features) if len(features) >= 2 else None


def mean_of(values: list[float | None]) -> float | None:
    """The mean of the values that are not None (None when there are none)."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def codebook_figures(tokenizer, images: np.ndarray, generated_codes: torch.Tensor | None,
                     batch_size: int = 64) -> dict[str, float]:
    """Codebook use on the real ``images`` (the share of codes used, perplexity) and, when
    given, on the generated code grids."""
    from timetok.core.nn.quantizer import CodeUsage

    usage = CodeUsage(tokenizer.codebook_size)
    usage.update(tokenizer.encode_images(images, batch_size))
    real = usage.compute()
    figures = {"usage_real": real["usage"], "perplexity_real": real["perplexity"],
               "codebook_size": tokenizer.codebook_size}
    if generated_codes is not None:
        usage.reset()
        usage.update(generated_codes)
        figures |= {"usage_generated": usage.compute()["usage"]}
    return figures


@torch.no_grad()
def reconstruction_figures(tokenizer, images: np.ndarray, users: np.ndarray,
                           batch_size: int = 64) -> tuple[dict[str, float], np.ndarray]:
    """How well a tokenizer rebuilds ``images`` ``[N, S, S]``: MSE and PSNR on the [0, 1]
    scale, the share of the codebook used and the distinct codes per user (min and mean);
    returns the figures and the reconstructions."""
    device = next(tokenizer.parameters()).device
    codes = tokenizer.encode_images(images, batch_size)
    recon = torch.cat([tokenizer.decode(chunk.to(device)).float().cpu()
                       for chunk in codes.split(batch_size)]).numpy()
    mse = float(np.mean((recon - images) ** 2))
    per_user = [len(np.unique(codes[torch.from_numpy(users == u)].numpy()))
                for u in np.unique(users)]
    return {"mse": mse, "psnr": float(10 * np.log10(1 / max(mse, 1e-12))),
            "usage": len(np.unique(codes.numpy())) / tokenizer.codebook_size,
            "codes_per_user_min": float(min(per_user)),
            "codes_per_user_mean": float(np.mean(per_user))}, recon
