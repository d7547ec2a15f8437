"""Validation of generated micro-Doppler spectrograms against real images of the same users.

A small CNN learns to tell users apart from real training images; its penultimate layer
gives the features behind every other figure. ``validate`` compares generated images with
real test images of the same users: classifier accuracy (does the generator keep each
user's signature?), the Fréchet distance (does it match the real distribution?), diversity
(mean pairwise feature distance: no mode collapse?) and memorisation (are generated images
nearer the training images than real test images are, or even pixel copies of them?).
``write_report`` writes ``report.json``, ``report.md`` and ``grid.png``.

Images are float arrays ``[N, H, W]`` in [0, 1] (rows: Doppler, columns: time); user ids
are integers 0..U-1.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from timetok.core.data.images import split_per_user
from timetok.core.errors import CheckpointError, DataError
from timetok.core.model_folder import read_json, read_weights
from timetok.core.utils import atomic_path, atomic_write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CHUNK_BYTES = 64 * 2**20  # memory for one block of a distance matrix


# --------------------------------------------------------------------------- inputs


def check_images(images: Any, name: str) -> np.ndarray:
    """``images`` as a float32 array ``[N, H, W]`` in [0, 1], or a DataError naming ``name``."""
    array = np.asarray(images)
    if array.ndim != 3 or len(array) == 0:
        raise DataError(f"{name} must be a non-empty array [N, H, W], got shape "
                        f"{array.shape}; pass grayscale images stacked along the first axis")
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{name} must hold floats in [0, 1], got dtype {array.dtype}; "
                        "scale the images to [0, 1] as floats")
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


def _check_features(features: Any, name: str, min_rows: int = 1) -> np.ndarray:
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


# --------------------------------------------------------------------------- classifier


INPUT_SIDE = 64  # images are pooled down to at most this side before the CNN


class UserClassifier(nn.Module):
    """A small CNN telling users apart from spectrograms; its pooled features (the
    penultimate layer, ``channels[-1]`` wide) are what the distances are measured on.
    Images larger than ``INPUT_SIDE`` are average-pooled down to it first: cadence, speed
    and limb extent survive, and a 128 x 128 set trains four times faster."""

    def __init__(self, num_users: int, channels: Sequence[int] = (32, 64, 128, 128),
                 seen_users: Sequence[int] | None = None):
        super().__init__()
        if num_users < 1 or not channels:
            raise DataError(f"a classifier needs num_users >= 1 and some channels, got "
                            f"{num_users} and {list(channels)}; pass real users' images")
        self.num_users = int(num_users)
        self.channels = [int(c) for c in channels]
        self.seen_users = sorted(int(u) for u in (seen_users if seen_users is not None
                                                  else range(num_users)))
        blocks: list[nn.Module] = []
        width = 1
        for out in self.channels:
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False),
                       nn.GroupNorm(min(8, out), out), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            width = out
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, self.num_users)
        self.history: dict[str, Any] = {}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W]`` images to ``[B, D]`` features."""
        x = x.unsqueeze(1) - 0.5
        if max(x.shape[-2:]) > INPUT_SIDE:
            x = F.adaptive_avg_pool2d(x, (min(x.shape[-2], INPUT_SIDE),
                                          min(x.shape[-1], INPUT_SIDE)))
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W]`` images to ``[B, num_users]`` logits."""
        return self.head(self.embed(x))

    def fit(self, images: np.ndarray, users: np.ndarray, val_images: np.ndarray | None = None,
            val_users: np.ndarray | None = None, epochs: int = 40, batch_size: int = 16,
            lr: float = 5e-4, seed: int = 0, device: str | torch.device = "cpu",
            progress: bool = False) -> UserClassifier:
        """Train from fresh weights drawn from ``seed`` (AdamW, cosine schedule, random time
        rolls and gain changes); with validation data, keep the weights of the best
        validation accuracy. Fills ``self.history``."""
        images = check_images(images, "images")
        users = check_users(users, len(images), "users")
        if users.max() >= self.num_users:
            raise DataError(f"users holds id {int(users.max())} but the classifier has "
                            f"{self.num_users} classes; build it with num_users > max id")
        has_val = val_images is not None and len(val_images) > 0
        if has_val:
            val_images = check_images(val_images, "val_images")
            val_users = check_users(val_users, len(val_images), "val_users")
        if epochs < 1 or batch_size < 1:
            raise DataError(f"epochs and batch_size must be >= 1, got {epochs} and "
                            f"{batch_size}; pass positive values")
        self.seen_users = sorted(int(u) for u in np.unique(users))
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in self.modules():
                if module is not self and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        self.to(device)
        x_all, y_all = torch.from_numpy(images), torch.from_numpy(users)
        steps = epochs * -(-len(images) // batch_size)
        optimiser = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=1e-2)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        best_accuracy, best_state, best_epoch = -1.0, None, epochs
        losses, accuracies = [], []
        for epoch in range(1, epochs + 1):
            self.train()
            total = 0.0
            for batch in torch.randperm(len(images), generator=generator).split(batch_size):
                x = _augment(x_all[batch], generator).to(device)
                loss = nn.functional.cross_entropy(self(x), y_all[batch].to(device))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(batch)
            losses.append(total / len(images))
            line = f"epoch {epoch}/{epochs} loss {losses[-1]:.4f}"
            if has_val:
                accuracies.append(float((self.predict(val_images) == val_users).mean()))
                line += f" val accuracy {accuracies[-1]:.3f}"
                if accuracies[-1] > best_accuracy:
                    best_accuracy, best_epoch = accuracies[-1], epoch
                    best_state = copy.deepcopy(self.state_dict())
            if progress:
                print(line, flush=True)
        if best_state is not None:
            self.load_state_dict(best_state)
        self.history = {"epochs": epochs, "train_loss": losses, "val_accuracy": accuracies,
                        "best_epoch": best_epoch,
                        "best_val_accuracy": best_accuracy if has_val else None}
        return self

    @torch.no_grad()
    def _batched(self, images: np.ndarray, fn, batch_size: int) -> np.ndarray:
        images = check_images(images, "images")
        self.eval()
        device = next(self.parameters()).device
        return torch.cat([fn(torch.from_numpy(images[i:i + batch_size]).to(device)).cpu()
                          for i in range(0, len(images), batch_size)]).numpy()

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The most likely user of each image, ``[N]`` ints."""
        return self._batched(images, lambda x: self(x).argmax(-1), batch_size)

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Penultimate-layer features ``[N, D]`` (float32)."""
        return self._batched(images, self.embed, batch_size)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (each atomically) to ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(state, tmp, metadata={"format": "pt"})
        config = {"model_type": "doppler_user_classifier", "num_users": self.num_users,
                  "channels": self.channels, "seen_users": self.seen_users,
                  "history": self.history}
        atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> UserClassifier:
        """A classifier written by ``save``, in eval mode on the CPU."""
        directory = Path(directory)
        config = read_json(directory / CONFIG_NAME, "classifier config")
        if config.get("model_type") != "doppler_user_classifier":
            raise CheckpointError(f"{directory} does not hold a user classifier; pass the "
                                  "folder that UserClassifier.save wrote")
        model = cls(config["num_users"], config["channels"], config["seen_users"])
        model.history = config.get("history", {})
        try:
            model.load_state_dict(read_weights(directory / WEIGHTS_NAME))
        except RuntimeError as err:
            raise CheckpointError(f"{directory / WEIGHTS_NAME} does not fit its config "
                                  f"({str(err).splitlines()[0]}); save the classifier "
                                  "again") from None
        return model.eval()


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Roll each image along time (up to 1/8 of the width) and scale its gain by 0.9-1.1;
    the Doppler axis is left alone (its sign is the direction of motion)."""
    n, _, width = x.shape
    limit = max(width // 8, 1)
    shifts = torch.randint(-limit, limit + 1, (n, 1), generator=generator)
    columns = (torch.arange(width)[None] - shifts) % width
    x = x.gather(2, columns[:, None, :].expand_as(x))
    gain = 0.9 + 0.2 * torch.rand(n, 1, 1, generator=generator)
    return (x * gain).clamp(0, 1)


# --------------------------------------------------------------------------- maths


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues,
    rounding errors, clipped to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` ``[N, D]``:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), real by construction."""
    a = _check_features(a, "the first feature set", min_rows=2)
    b = _check_features(b, "the second feature set", min_rows=2)
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
    query = _check_features(query, "query")
    reference = _check_features(reference, "reference")
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
    features = _check_features(features, "features", min_rows=2)
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
    generated = _check_features(np.asarray(generated).reshape(len(generated), -1), "generated")
    train = _check_features(np.asarray(train).reshape(len(train), -1), "train")
    test = _check_features(np.asarray(test).reshape(len(test), -1), "test")
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


# --------------------------------------------------------------------------- validation


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return float(numerator / denominator)


def _accuracy(predicted: np.ndarray, users: np.ndarray) -> float:
    return float((predicted == users).mean())


def _diversity(features: np.ndarray) -> float | None:
    return mean_pairwise_distance(features) if len(features) >= 2 else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def train_classifier(images: np.ndarray, users: np.ndarray, *,
                     channels: Sequence[int] = (32, 64, 128, 128), val_fraction: float = 0.15,
                     epochs: int = 40, batch_size: int = 16, lr: float = 5e-4, seed: int = 0,
                     device: str | torch.device = "cpu", progress: bool = False
                     ) -> UserClassifier:
    """A user classifier fitted on real ``images``, ``val_fraction`` of each user's held
    out (drawn with ``seed``) to pick the best epoch; their count is in its history."""
    images = check_images(images, "images")
    users = check_users(users, len(images), "users")
    held = split_per_user(users, val=val_fraction, test=0, seed=seed)
    fit, val = held["train"], held["val"]
    classifier = UserClassifier(int(users.max()) + 1, channels)
    classifier.fit(images[fit], users[fit], images[val], users[val], epochs=epochs,
                   batch_size=batch_size, lr=lr, seed=seed, device=device, progress=progress)
    classifier.history["val_images"] = len(val)
    return classifier


def validate(train_images: np.ndarray, train_users: np.ndarray, test_images: np.ndarray,
             test_users: np.ndarray, generated_images: np.ndarray,
             generated_users: np.ndarray, *, classifier: UserClassifier | None = None,
             codebook: dict[str, Any] | None = None,
             classifier_channels: Sequence[int] = (32, 64, 128, 128), val_fraction: float = 0.15,
             epochs: int = 40, batch_size: int = 16, lr: float = 5e-4, seed: int = 0,
             quantile: float = 0.05, device: str | torch.device = "cpu",
             progress: bool = False) -> dict[str, Any]:
    """Compare generated images with real test images of the same users; a JSON-ready dict.

    Without ``classifier``, one of ``classifier_channels`` is trained on ``train_images``
    (``val_fraction`` of each user's images, drawn with ``seed``, held out to pick the best
    epoch); pass a trained one to reuse it across runs. ``codebook`` figures (e.g. codes
    used, perplexity) are copied into the report. Keys: data, classifier, accuracy,
    frechet, diversity, memorisation, codebook, per_user.
    """
    train_images = check_images(train_images, "train_images")
    train_users = check_users(train_users, len(train_images), "train_users")
    test_images = check_images(test_images, "test_images")
    test_users = check_users(test_users, len(test_images), "test_users")
    generated_images = check_images(generated_images, "generated_images")
    generated_users = check_users(generated_users, len(generated_images), "generated_users")
    size = train_images.shape[1:]
    for name, images in (("test_images", test_images), ("generated_images", generated_images)):
        if images.shape[1:] != size:
            raise DataError(f"{name} are {images.shape[1]}x{images.shape[2]} but the real "
                            f"training images {size[0]}x{size[1]}; resize them to match")
    if len(test_images) < 2 or len(generated_images) < 2:
        raise DataError("validation needs at least 2 real test and 2 generated images; "
                        "pass more images")
    if codebook is not None:
        try:
            codebook = json.loads(json.dumps(codebook))
        except (TypeError, ValueError) as err:
            raise DataError(f"codebook figures are not JSON-ready ({err}); pass numbers, "
                            "strings, lists and dicts") from None

    trained = classifier is None
    if classifier is None:
        classifier = train_classifier(train_images, train_users, channels=classifier_channels,
                                      val_fraction=val_fraction, epochs=epochs,
                                      batch_size=batch_size, lr=lr, seed=seed, device=device,
                                      progress=progress)
    n_val = classifier.history.get("val_images", 0) if trained else 0
    seen = set(classifier.seen_users)
    for name, users in (("test_users", test_users), ("generated_users", generated_users)):
        unseen = sorted(set(users.tolist()) - seen)
        if unseen:
            raise DataError(f"{name} holds user ids the classifier never saw in training "
                            f"({', '.join(map(str, unseen[:10]))}); keep only users with real "
                            "training images")

    features = {name: classifier.features(images).astype(np.float64) for name, images in
                (("train", train_images), ("test", test_images),
                 ("generated", generated_images))}
    predicted_test = classifier.predict(test_images)
    predicted_generated = classifier.predict(generated_images)

    per_user: dict[str, dict[str, Any]] = {}
    for user in sorted(set(test_users.tolist()) | set(generated_users.tolist())):
        real, fake = test_users == user, generated_users == user
        real_accuracy = _accuracy(predicted_test[real], test_users[real]) if real.any() else None
        fake_accuracy = (_accuracy(predicted_generated[fake], generated_users[fake])
                         if fake.any() else None)
        real_diversity = _diversity(features["test"][real])
        fake_diversity = _diversity(features["generated"][fake])
        per_user[str(user)] = {
            "real_test_images": int(real.sum()), "generated_images": int(fake.sum()),
            "accuracy_real_test": real_accuracy, "accuracy_generated": fake_accuracy,
            "accuracy_ratio": _ratio(fake_accuracy, real_accuracy),
            "diversity_real_test": real_diversity, "diversity_generated": fake_diversity,
            "diversity_ratio": _ratio(fake_diversity, real_diversity),
        }

    accuracy_real = _accuracy(predicted_test, test_users)
    accuracy_generated = _accuracy(predicted_generated, generated_users)
    fd_generated = frechet_distance(features["generated"], features["test"])
    fd_floor = frechet_distance(features["train"], features["test"])
    diversity_real = mean_pairwise_distance(features["test"])
    diversity_generated = mean_pairwise_distance(features["generated"])
    per_user_real = _mean([row["diversity_real_test"] for row in per_user.values()])
    per_user_generated = _mean([row["diversity_generated"] for row in per_user.values()])

    in_features = memorisation(nearest_distances(features["generated"], features["train"]),
                               nearest_distances(features["test"], features["train"]),
                               quantile)
    in_pixels = nearer_train(generated_images, train_images, test_images, train_users,
                             test_users)
    memorised = in_features["memorised"] or in_pixels["memorised"]
    verdict = "no memorised copies" if not memorised else "; ".join(
        f"{space}: {m['verdict']}" for space, m in
        (("features", in_features), ("pixels", in_pixels)) if m["memorised"])

    return {
        "data": {"train_images": len(train_images), "validation_images": n_val,
                 "test_images": len(test_images), "generated_images": len(generated_images),
                 "users": len(per_user), "height": int(size[0]), "width": int(size[1])},
        "classifier": {"trained_here": trained, "feature_dim": classifier.channels[-1],
                       "classes": classifier.num_users,
                       "epochs": classifier.history.get("epochs"),
                       "best_epoch": classifier.history.get("best_epoch"),
                       "best_val_accuracy": classifier.history.get("best_val_accuracy")},
        "accuracy": {"real_test": accuracy_real, "generated": accuracy_generated,
                     "ratio": _ratio(accuracy_generated, accuracy_real)},
        "frechet": {"generated_vs_real_test": fd_generated, "real_train_vs_real_test": fd_floor,
                    "ratio": _ratio(fd_generated, fd_floor)},
        "diversity": {"real_test": diversity_real, "generated": diversity_generated,
                      "ratio": _ratio(diversity_generated, diversity_real),
                      "per_user_mean_real_test": per_user_real,
                      "per_user_mean_generated": per_user_generated,
                      "per_user_mean_ratio": _ratio(per_user_generated, per_user_real)},
        "memorisation": {"features": in_features, "pixels": in_pixels,
                         "memorised": memorised, "verdict": verdict},
        "codebook": codebook,
        "per_user": per_user,
    }


# --------------------------------------------------------------------------- writing


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary table, the memorisation verdict, the codebook
    figures and a per-user table."""
    acc, fd, div = report["accuracy"], report["frechet"], report["diversity"]
    mem = report["memorisation"]
    data = report["data"]
    rows = [
        ("classifier accuracy", acc["real_test"], acc["generated"], acc["ratio"]),
        ("Fréchet distance to real test (real: train-vs-test floor)",
         fd["real_train_vs_real_test"], fd["generated_vs_real_test"], fd["ratio"]),
        ("diversity, mean pairwise feature distance", div["real_test"], div["generated"],
         div["ratio"]),
        ("diversity, averaged per user", div["per_user_mean_real_test"],
         div["per_user_mean_generated"], div["per_user_mean_ratio"]),
        ("median nearest-train distance, features", mem["features"]["median_test"],
         mem["features"]["median_generated"], None),
    ]
    lines = [
        "# Generated micro-Doppler spectrograms: validation",
        "",
        f"{data['generated_images']} generated and {data['test_images']} real test images "
        f"({data['height']}x{data['width']}) of {data['users']} users; classifier trained on "
        f"{data['train_images'] - data['validation_images']} real training images.",
        "",
        "| metric | real | generated | generated / real |",
        "|---|---|---|---|",
        *(f"| {name} | {_fmt(r)} | {_fmt(g)} | {_fmt(q)} |" for name, r, g, q in rows),
        "",
        f"**Memorisation: {mem['verdict']}.** In feature space, "
        f"{mem['features']['share_below']:.1%} of generated images lie closer to the training "
        f"set than the closest {mem['features']['quantile']:.0%} of real test images do "
        f"(tolerance {mem['features']['tolerance']:.0%}). In pixels, "
        f"{mem['pixels']['share_nearest_train']:.1%} of the "
        f"{mem['pixels']['nearest_real_images']} real images nearest to generated ones are "
        f"training images, {mem['pixels']['expected_share']:.1%} without copying (excess "
        f"{mem['pixels']['excess']:.2f}, z = {mem['pixels']['z']:.1f}; memorised above "
        f"{mem['pixels']['margin']:.2f} and z = 3); near-exact pixel copies: "
        f"{mem['pixels']['near_exact_copies']}.",
        "",
    ]
    if report.get("codebook"):
        lines += ["| codebook | value |", "|---|---|",
                  *(f"| {k} | {_fmt(v)} |" for k, v in report["codebook"].items()), ""]
    lines += ["| user | real test | generated | accuracy real | accuracy generated | ratio "
              "| diversity real | diversity generated | ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for user, row in report["per_user"].items():
        lines.append("| " + " | ".join(_fmt(v) for v in (
            user, row["real_test_images"], row["generated_images"], row["accuracy_real_test"],
            row["accuracy_generated"], row["accuracy_ratio"], row["diversity_real_test"],
            row["diversity_generated"], row["diversity_ratio"])) + " |")
    return "\n".join(lines) + "\n"


def pick_users(users: Sequence[int], max_users: int = 8) -> list[int]:
    """All of ``users`` (sorted, unique) if at most ``max_users``, else ``max_users`` of them
    spread evenly over the range."""
    unique = sorted(set(int(u) for u in users))
    if len(unique) <= max_users:
        return unique
    return [unique[i] for i in np.linspace(0, len(unique) - 1, max_users).round().astype(int)]


def plot_grid(path: Path, real: np.ndarray, real_users: np.ndarray, generated: np.ndarray,
              generated_users: np.ndarray, users: Sequence[int], per_user: int = 4,
              label: str = "generated") -> None:
    """For each of ``users``, a row of real images above a row of generated ones (or of
    whatever ``label`` names: reconstructions, say)."""
    from timetok.core.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(2 * len(users), per_user, squeeze=False,
                             figsize=(1.4 * per_user, 1.5 * 2 * len(users)))
    for r, user in enumerate(users):
        for offset, (images, owners, title) in enumerate(
                ((real, real_users, f"user {user} real"),
                 (generated, generated_users, label))):
            row = axes[2 * r + offset]
            chosen = images[owners == user][:per_user]
            for c, ax in enumerate(row):
                ax.set_axis_off()
                if c < len(chosen):
                    ax.imshow(chosen[c], cmap="gray", origin="upper", vmin=0, vmax=1,
                              aspect="auto", interpolation="nearest")
            row[0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    _save(fig, path)


def write_report(out_dir: str | os.PathLike, report: dict[str, Any], real_test: np.ndarray,
                 real_test_users: np.ndarray, generated: np.ndarray,
                 generated_users: np.ndarray, per_user: int = 4,
                 users: Sequence[int] | None = None, max_users: int = 8) -> Path:
    """Write ``report.json``, ``report.md`` and ``grid.png`` to ``out_dir`` (each
    atomically). The grid shows ``users`` (default: :func:`pick_users` of the users
    present, at most ``max_users``), ``per_user`` images each."""
    real_test = check_images(real_test, "real_test")
    real_test_users = check_users(real_test_users, len(real_test), "real_test_users")
    generated = check_images(generated, "generated")
    generated_users = check_users(generated_users, len(generated), "generated_users")
    if per_user < 1:
        raise DataError(f"per_user must be >= 1, got {per_user}; pass a positive count")
    if users is None:
        users = pick_users([*real_test_users.tolist(), *generated_users.tolist()], max_users)
    if not users:
        raise DataError("no users to show in the grid; pass user ids present in the images")
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    plot_grid(out_dir / "grid.png", real_test, real_test_users, generated, generated_users,
              list(users), per_user)
    return out_dir
