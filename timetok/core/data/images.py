"""The ``images`` kind: grayscale spectrogram images, each of one user.

An :class:`ImageSet` holds ``images [N, H, W]`` float32 in [0, 1] and ``users [N]`` int64,
an index into ``user_names``. Two sources:

- a folder ``root/<user>/*.{png,jpg,jpeg,npy}`` (dataset ``image-folder``: the layout of
  per-user spectrogram collections and of our simulator's output), read by
  :func:`load_image_folder`;
- HDF5 radar recordings, one per user, each a 2-D ``[time, doppler_bins]`` micro-Doppler
  map cut into frames by :func:`load_hdf5_frames` (dataset ``parrad``: two real FMCW
  recordings of the imec PARRAD set).

Orientation, everywhere: rows are Doppler bins with the highest (most positive) Doppler at
the top, columns are time, left to right. HDF5 bins are taken to be in FFT-shifted order
(most negative Doppler first, zero at bin ``bins // 2``: the PARRAD maps peak there, at the
static clutter), so each frame is transposed and flipped upside down. Each HDF5 file is
scaled to [0, 1] by its own 1st and 99.9th percentiles, clipped.

:func:`split_per_user` splits *within* each user, so every user is in train, val and test.
Neighbouring frames of one recording are alike; a random split puts some of them on both
sides, which flatters a test score, and a report should say so.

Everything is loaded eagerly: thousands of 128 x 128 float32 images take 100 MB at most.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from timetok.core.data.images_formats import (
    HDF5_SUFFIXES,
    IMAGE_SUFFIXES,
    cut_frames,
    natural_key,
    read_image,
    read_recording,
    size_text,
)
from timetok.core.data.images_formats import resize as resize_image
from timetok.core.data.registry import (
    DataKind,
    DatasetSpec,
    credit,
    datasets,
    get_spec,
    register,
    register_kind,
    resolve_path,
)
from timetok.core.errors import DataError

PERCENTILES = (1.0, 99.9)  # of each HDF5 file: mapped to 0 and 1
PARRAD_CITATION = "imec PARRAD radar recordings; extract (c) 2025 Adnan Kerem Aksoy"


@dataclass
class ImageSet:
    """Images ``[N, H, W]`` float32 in [0, 1], ``users [N]`` int64 indexing ``user_names``,
    ``files`` (where each image came from, relative to ``source``) and ``report``: one line
    per thing done beyond reading (resized, skipped, ignored, scaled)."""

    images: np.ndarray
    users: np.ndarray
    user_names: list[str]
    files: list[str]
    source: str
    report: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def counts(self) -> dict[str, int]:
        """Images per user, by name."""
        counts = np.bincount(self.users, minlength=len(self.user_names))
        return dict(zip(self.user_names, counts.tolist(), strict=True))


def _whole(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


# --- per-user folders ------------------------------------------------------------------


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _user_files(folder: Path, root: Path, ignored: list[str],
                twins: list[str]) -> list[Path]:
    """The image files of one user folder, naturally sorted; an ``.npy`` beats a picture of
    the same stem. Other entries go to ``ignored``, pictures with an ``.npy`` twin to
    ``twins`` (both as paths relative to ``root``)."""
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(filter(_visible, folder.iterdir()), key=lambda p: natural_key(p.name)):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(path.stem, []).append(path)
        else:
            ignored.append(path.relative_to(root).as_posix() + "/" * path.is_dir())
    files = []
    for paths in by_stem.values():
        arrays = [p for p in paths if p.suffix.lower() == ".npy"]
        if arrays:
            twins += [p.relative_to(root).as_posix() for p in paths if p not in arrays]
            files += arrays
        else:
            files += paths
    return sorted(files, key=lambda p: natural_key(p.name))


def _examples(names: list[str], limit: int = 3) -> str:
    more = f", … ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_image_folder(root: str | os.PathLike, size: int = 128, resize: bool = True
                      ) -> ImageSet:
    """Read ``root/<user>/*.{png,jpg,jpeg,npy}``: one folder per user.

    Users are the sub-folders (naturally sorted, hidden ones skipped); files in each are
    naturally sorted (``2.png`` before ``10.png``). Pictures are read as grayscale
    (``convert("L") / 255``; 16-bit PNGs / 65535); ``.npy`` files must hold a 2-D uint8 array
    (divided by 255) or a float array in [0, 1]. When a folder holds an ``.npy`` and a
    picture of the same stem (the simulator writes both: the exact values and a preview),
    only the ``.npy`` is read. Other files (``.json``, hidden files, files at the root such
    as ``users.json``) are ignored.

    Images that are not ``size x size`` are resized with PIL's bilinear filter; with
    ``resize=False`` they are refused instead.
    """
    size = _whole(size, "size")
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder not found: {root}; check the data_path value")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder; pass the folder that holds one "
                        "folder of images per user (root/<user>/*.png)")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)),
                     key=lambda p: natural_key(p.name))
    ignored = sorted((p.name for p in root.iterdir() if _visible(p) and not p.is_dir()),
                     key=natural_key)
    if not folders:
        loose = any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir())
        hint = (" (its images lie at the top: put them in a folder per user)" if loose else "")
        raise DataError(f"{root} has no user folders{hint}; expected one folder per user: "
                        "root/<user>/*.png, .jpg, .jpeg or .npy")
    twins: list[str] = []
    entries: list[tuple[int, Path]] = []
    for user, folder in enumerate(folders):
        files = _user_files(folder, root, ignored, twins)
        if not files:
            raise DataError(f"user folder {folder.name!r} holds no images (.png, .jpg, .jpeg "
                            "or .npy); add some or remove the folder")
        entries += [(user, path) for path in files]
    names = [path.relative_to(root).as_posix() for _, path in entries]
    images = np.empty((len(entries), size, size), dtype=np.float32)
    first_of_shape: dict[tuple[int, int], str] = {}
    resized: Counter[tuple[int, int]] = Counter()
    for i, ((_, path), name) in enumerate(zip(entries, names, strict=True)):
        image = read_image(path, name)
        first_of_shape.setdefault(image.shape, name)
        if image.shape == (size, size):
            images[i] = image
        elif resize:
            images[i] = resize_image(image, size)
            resized[image.shape] += 1
    if not resize and len(first_of_shape) > 1:
        (a, one), (b, other) = list(first_of_shape.items())[:2]
        raise DataError(f"images of mixed sizes: {one} is {size_text(a)}, {other} is "
                        f"{size_text(b)}; pass resize=True to bring them all to "
                        f"{size}x{size}")
    if not resize and (shape := next(iter(first_of_shape))) != (size, size):
        fix = f"pass size={shape[0]} or" if shape[0] == shape[1] else "they are not square:"
        raise DataError(f"the images are {size_text(shape)}, not {size}x{size}; {fix} pass "
                        "resize=True")
    report = []
    if resized:
        sizes = ", ".join(f"{size_text(s)}: {n}" for s, n in sorted(resized.items()))
        report.append(f"resized {sum(resized.values())} images to {size}x{size} (from {sizes})")
    if twins:
        report.append(f"skipped {len(twins)} picture{'s' * (len(twins) > 1)} with an .npy "
                      f"of the same name, read instead ({_examples(twins)})")
    if ignored:
        report.append(f"ignored {len(ignored)} {'entries' if len(ignored) > 1 else 'entry'} "
                      f"that {'are' if len(ignored) > 1 else 'is'} not an image "
                      f"({_examples(ignored)})")
    return ImageSet(images, np.array([u for u, _ in entries], dtype=np.int64),
                    [f.name for f in folders], names, str(root), report)


# --- HDF5 recordings -------------------------------------------------------------------


def load_hdf5_frames(paths: str | os.PathLike | Sequence[str | os.PathLike],
                     dataset: str = "mDoppler", width: int = 128, size: int = 128,
                     stride: int | None = None) -> ImageSet:
    """Cut HDF5 micro-Doppler recordings into frames; each file is one user (its stem).

    Each file's 2-D ``dataset`` is ``[time, doppler_bins]``; frames of ``width`` time steps
    start every ``stride`` steps (default ``width``: no overlap; a shorter tail is left
    out), are turned so that rows are Doppler bins, highest at the top, and columns time,
    scaled to [0, 1] by the file's 1st and 99.9th percentiles (clipped) and resized to
    ``size x size`` when they differ.
    """
    width, size = _whole(width, "width"), _whole(size, "size")
    stride = width if stride is None else _whole(stride, "stride")
    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    if not paths:
        raise DataError("no HDF5 recordings given; pass one .h5 file or more")
    paths = sorted(paths, key=lambda p: natural_key(p.stem))
    stems = [p.stem for p in paths]
    if len(set(stems)) < len(stems):
        twin = next(s for s in stems if stems.count(s) > 1)
        raise DataError(f"two recordings are named {twin!r}; each file is one user, named by "
                        "its stem: rename one")
    images, users, files, report = [], [], [], []
    resized = 0
    for user, path in enumerate(paths):
        values = read_recording(path, dataset)
        frames, starts, (low, high) = cut_frames(values, width, stride, path.name, PERCENTILES)
        if frames.shape[1:] != (size, size):
            frames = np.stack([resize_image(frame, size) for frame in frames])
            resized += len(frames)
        images.append(frames)
        users += [user] * len(frames)
        files += [f"{path.name}[{s}:{s + width}]" for s in starts.tolist()]
        unused = len(values) - (int(starts[-1]) + width)
        tail = f", last {unused:,} steps unused" if unused else ""
        report.append(f"{path.name}: {len(values):,} steps x {values.shape[1]} bins -> "
                      f"{len(frames):,} frames{tail}; percentiles {PERCENTILES[0]:g} and "
                      f"{PERCENTILES[1]:g} ({low:,.1f}, {high:,.1f}) scaled to 0 and 1")
    if resized:
        report.append(f"resized {resized:,} frames to {size}x{size}")
    parents = {str(p.parent) for p in paths}
    source = parents.pop() if len(parents) == 1 else ", ".join(str(p) for p in paths)
    return ImageSet(np.concatenate(images), np.array(users, dtype=np.int64), stems, files,
                    source, report)


def _recordings(folder: Path) -> list[Path]:
    """The HDF5 files of a folder (or the one file given)."""
    if folder.is_file():
        return [folder]
    found = [p for p in folder.iterdir() if p.suffix.lower() in HDF5_SUFFIXES and _visible(p)]
    if not found:
        raise DataError(f"{folder} holds no .h5 recordings; pass the folder that holds them")
    return found


# --- splits ----------------------------------------------------------------------------


def split_per_user(users: np.ndarray, val: float = 0.1, test: float = 0.2, seed: int = 0, *,
                   names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Index arrays ``train``/``val``/``test`` (sorted, disjoint, covering every index),
    drawn within each user: of ``n`` images a user gives ``round(test * n)`` to test and
    ``round(val * n)`` to val, at least one each unless that share is 0, and keeps one at
    least for train. Seeded: the same input gives the same split. ``names`` label users in
    messages."""
    users = np.asarray(users)
    if users.ndim != 1 or len(users) == 0 or users.dtype.kind not in "iu" or users.min() < 0:
        raise DataError(f"users must be a non-empty 1-D array of user indices, got "
                        f"{users.dtype} of shape {users.shape}")
    for fraction, name in ((val, "val"), (test, "test")):
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                or not 0 <= fraction < 1:
            raise DataError(f"{name} must lie in [0, 1), got {fraction!r}")
    if val + test >= 1:
        raise DataError(f"val + test is {val + test:g}, leaving nothing to train on; lower them")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a whole number >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    needed = 1 + (val > 0) + (test > 0)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for user in np.unique(users):
        index = rng.permutation(np.flatnonzero(users == user))
        n = len(index)
        if n < needed:
            label = f"user {names[user]!r}" if names is not None else f"user {user}"
            raise DataError(f"{label} has {n} image{'s' * (n != 1)}; a split within each user "
                            f"needs {needed} or more: add images of this user or leave it out")
        n_test = min(max(int(np.floor(test * n + 0.5)), 1), n - needed + 1) if test else 0
        n_val = min(max(int(np.floor(val * n + 0.5)), 1), n - 1 - n_test) if val else 0
        parts["test"].append(index[:n_test])
        parts["val"].append(index[n_test:n_test + n_val])
        parts["train"].append(index[n_test + n_val:])
    return {split: np.sort(np.concatenate(p)).astype(np.int64) for split, p in parts.items()}


def save_image(stem: Path, image: np.ndarray) -> None:
    """``stem.npy`` (the exact float32 image) and ``stem.png`` (an 8-bit preview): the
    layout :func:`load_image_folder` reads, ``.npy`` first."""
    from PIL import Image

    np.save(stem.with_suffix(".npy"), image.astype(np.float32))
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(stem.with_suffix(".png"))


# --- by name ---------------------------------------------------------------------------


def _load(spec: DatasetSpec, path: Path, size: int, resize: bool) -> ImageSet:
    if spec.protocol == "hdf5":
        return load_hdf5_frames(_recordings(path), size=size)
    return load_image_folder(path, size=size, resize=resize)


def load_images(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                data_path: str | os.PathLike | None = None, size: int = 128,
                resize: bool = True) -> ImageSet:
    """A registered images dataset (``parrad``, ``image-folder`` with ``data_path``) or a
    folder ``root/<user>/…`` given directly (a dataset name wins over a folder of that name
    in the working directory)."""
    name = str(name_or_path)
    if name.strip().lower() not in datasets() and Path(name).exists():
        return load_image_folder(name, size=size, resize=resize)
    spec = get_spec(name)
    if spec.kind != "images":
        raise DataError(f"dataset {spec.name!r} holds {spec.kind}, not images; pick an images "
                        "dataset (timetok data list) or pass a folder")
    return _load(spec, resolve_path(spec.name, data_dir, data_path), size, resize)


# --- the kind's report -----------------------------------------------------------------


def describe(spec: DatasetSpec, path: Path, options: dict) -> dict:
    """Users, images per user, image size and value range, the load report and, for HDF5
    recordings, the frames per file (``options`` are ignored: 128 x 128 images)."""
    data = _load(spec, path, 128, True)
    counts = data.counts()
    per_user = np.array(list(counts.values()))
    report = {
        "dataset": spec.name, "kind": spec.kind, "path": str(path), "source": data.source,
        "images": len(data), "users": counts,
        "images_per_user": {"min": int(per_user.min()), "median": float(np.median(per_user)),
                            "max": int(per_user.max())},
        "image_size": list(data.images.shape[1:]),
        "value_range": [float(data.images.min()), float(data.images.max())],
        "report": data.report, "licence": spec.licence, "citation": spec.citation,
    }
    if spec.protocol == "hdf5":
        files = {p.stem: p.name for p in _recordings(path)}
        report["frames_per_file"] = {files[user]: n for user, n in counts.items()}
    return report


def render(report: dict) -> str:
    users, spread = report["users"], report["images_per_user"]
    shown = ", ".join(f"{name} ({n:,})" for name, n in list(users.items())[:8])
    more = f", … ({len(users)} users)" if len(users) > 8 else ""
    low, high = report["value_range"]
    lines = [f"{report['dataset']} ({report['kind']}): {report['images']:,} images of "
             f"{size_text(tuple(report['image_size']))} from {len(users)} user"
             f"{'s' * (len(users) != 1)}, read from {report['source']}",
             f"images per user: min {spread['min']:,}, median {spread['median']:g}, "
             f"max {spread['max']:,}",
             f"users: {shown}{more}", f"values: {low:.3g} to {high:.3g}"]
    if frames := report.get("frames_per_file"):
        lines.append("frames per file: " + ", ".join(f"{f}: {n:,}" for f, n in frames.items()))
    if report["report"]:
        lines += ["load report:", *(f"  {line}" for line in report["report"])]
    return "\n".join(lines + credit(report))


register_kind(DataKind("images", "grayscale spectrogram images, each of one user: a folder "
                       "per user or HDF5 recordings cut into frames", describe, render))
register(DatasetSpec("parrad", "images", "real FMCW radar micro-Doppler maps of one person "
                     "(2 recordings, each a user), cut into 128-step frames",
                     "radar_parrad_sample", "2 recordings x 6,678 steps x 128 Doppler bins",
                     licence="MIT", citation=PARRAD_CITATION, protocol="hdf5"))
register(DatasetSpec("image-folder", "images", "any folder of per-user images: "
                     "root/<user>/*.png, .jpg, .jpeg or .npy", None, "your folder",
                     protocol="folder"))
