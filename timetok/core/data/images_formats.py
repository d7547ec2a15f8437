"""Readers of the image formats: one grayscale picture (``.png``, ``.jpg``, ``.jpeg``), one
``.npy`` array, one HDF5 recording cut into frames. Each checks what it reads and returns
float arrays in [0, 1]; :mod:`timetok.core.data.images` gathers them into an ``ImageSet``.

h5py and PIL are imported inside the functions that need them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from timetok.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
HDF5_SUFFIXES = (".h5", ".hdf5")


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside names by value: ``2.png`` before ``10.png``
    (ties broken by the exact name, so the order is total)."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def size_text(shape: tuple[int, ...]) -> str:
    """``(height, width)`` as a person writes it: ``20x32``."""
    return "x".join(str(n) for n in shape)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """A 2-D float image resized to ``size x size`` with PIL's bilinear filter (mode F)."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    resized = np.asarray(picture.resize((size, size), Image.Resampling.BILINEAR))
    return np.clip(resized, 0.0, 1.0)


def _read_picture(path: Path, name: str) -> np.ndarray:
    """A PNG or JPEG as grayscale in [0, 1]: ``convert("L") / 255``; 16-bit grayscale PNGs
    (which ``convert("L")`` would saturate) are divided by 65535 instead."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            if picture.mode.startswith("I"):  # 16-bit grayscale
                values = np.asarray(picture, dtype=np.float64) / 65535.0
            else:
                values = np.asarray(picture.convert("L"), dtype=np.float64) / 255.0
    except (OSError, ValueError, SyntaxError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{name}: not a readable image ({reason}); replace or remove the file"
                        ) from None
    if values.min() < 0 or values.max() > 1:
        raise DataError(f"{name}: a {picture.mode} image with values beyond 16 bits; save it "
                        "as an 8- or 16-bit grayscale PNG")
    return values


def _read_array(path: Path, name: str) -> np.ndarray:
    """A ``.npy`` image: 2-D, uint8 (divided by 255) or float in [0, 1] without NaNs."""
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{name}: not a readable .npy array ({reason}); save it with numpy.save"
                        ) from None
    fix = "save a 2-D float array in [0, 1] or a uint8 array"
    if values.ndim != 2:
        raise DataError(f"{name}: an array of shape {values.shape}, not a 2-D image; {fix}")
    if values.dtype == np.uint8:
        return values / 255.0
    if values.dtype.kind != "f":
        raise DataError(f"{name}: an array of {values.dtype}; {fix}")
    values = values.astype(np.float64)
    if bad := int((~np.isfinite(values)).sum()):
        raise DataError(f"{name}: {bad} NaN or infinite values; replace them, {fix}")
    if values.min() < 0 or values.max() > 1:
        raise DataError(f"{name}: values outside [0, 1] ({values.min():g} to "
                        f"{values.max():g}); scale them to [0, 1] or {fix}")
    return values


def read_image(path: Path, name: str) -> np.ndarray:
    """One image file as float64 ``[height, width]`` in [0, 1]; ``name`` labels messages."""
    if path.suffix.lower() == ".npy":
        return _read_array(path, name)
    return _read_picture(path, name)


def read_recording(path: Path, dataset: str) -> np.ndarray:
    """The 2-D dataset ``[time, doppler_bins]`` of an HDF5 file, float32, all finite."""
    import h5py

    if not path.is_file():
        raise DataError(f"recording not found: {path}; check the path")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        reason = " ".join(str(err).split())
        raise DataError(f"{path.name}: not an HDF5 file ({reason}); pass .h5 recordings"
                        ) from None
    with handle:
        node = handle.get(dataset)
        if not isinstance(node, h5py.Dataset):
            held = []
            handle.visititems(lambda key, obj: held.append(key)
                              if isinstance(obj, h5py.Dataset) else None)
            raise DataError(f"{path.name} has no dataset {dataset!r} (it holds: "
                            f"{', '.join(held) or 'no datasets'}); set the dataset option to "
                            "the one with the [time, doppler_bins] map")
        if node.ndim != 2 or node.dtype.kind not in "iuf":
            raise DataError(f"{path.name}: dataset {dataset!r} is {node.dtype} of shape "
                            f"{node.shape}, expected a 2-D map of numbers [time, doppler_bins]; "
                            "set the dataset option to such a dataset")
        values = np.asarray(node[()], dtype=np.float32)
    if not np.isfinite(values).all():
        t, b = np.argwhere(~np.isfinite(values))[0]
        bad = int((~np.isfinite(values)).sum())
        raise DataError(f"{path.name}: dataset {dataset!r} holds {bad} NaN or infinite values "
                        f"(the first at time step {t}, bin {b}); fill them or cut them out of "
                        "the recording")
    return values


def cut_frames(values: np.ndarray, width: int, stride: int, name: str,
               percentiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A recording ``[time, bins]`` -> frames ``[n, bins, width]`` in [0, 1] (Doppler on the
    rows, the highest bin at the top), their start steps, and the ``(low, high)`` values
    that the file's percentiles mapped to 0 and 1."""
    steps = len(values)
    if steps < width:
        raise DataError(f"{name}: {steps} time steps, fewer than one frame of width {width}; "
                        "lower width")
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high <= low:
        raise DataError(f"{name}: percentiles {percentiles[0]:g} and {percentiles[1]:g} are "
                        f"both {low:g}: the recording is flat; check the dataset option")
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)
    starts = np.arange(0, steps - width + 1, stride)
    frames = np.stack([scaled[s:s + width].T[::-1] for s in starts])
    return frames, starts, (low, high)
