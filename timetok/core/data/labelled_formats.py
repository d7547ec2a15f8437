"""Readers of the labelled formats: UCI HAR (npz or the official text folder), UCR 2018
``.tsv``, UEA ``.ts`` (through aeon) and plain ``.npz``. Each returns its files as
:class:`Table` objects; :mod:`timetok.core.data.labelled` splits and scales them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timetok.core.errors import ConfigError, DataError

HAR_CHANNELS = ["body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y",
                "body_gyro_z", "total_acc_x", "total_acc_y", "total_acc_z"]
NPZ_ARRAYS = "X and y, or X_train, y_train, X_test and y_test"  # what a plain .npz holds
NPZ_STARTS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip file's first bytes (an empty one's)


@dataclass
class Table:
    """One file as read: ``x [N, T, C]`` float32 (0 where padded), ``mask [N, T]``,
    ``labels [N]`` as text, ``groups [N]`` or None; ``source`` names it in messages."""

    x: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    source: str


# --- cell-level checks shared by the readers ------------------------------------------


def _mask_padding(x: np.ndarray, locate) -> tuple[np.ndarray, np.ndarray]:
    """``x [N, T, C]`` with trailing all-NaN steps as padding -> (float32 ``x`` with 0
    there, ``mask [N, T]``); a NaN or infinity before a sample's last step raises,
    naming the place through ``locate(sample, step, channel)``."""
    x = np.asarray(x, dtype=np.float64).astype(np.float32)  # beyond float32: inf, refused
    present = ~np.isnan(x).all(axis=2)
    steps = x.shape[1]
    lengths = np.where(present.any(axis=1), steps - np.argmax(present[:, ::-1], axis=1), 0)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    bad = ~np.isfinite(x) & mask[:, :, None]
    if bad.any():
        i, t, c = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(f"{locate(i, t, c)}: missing or non-finite value {x[i, t, c]} inside "
                        "the series; only trailing missing values (padding) are allowed, fix "
                        "or drop the sample")
    return np.where(mask[:, :, None], x, 0).astype(np.float32), mask


def _label_text(raw: np.ndarray, source: str) -> np.ndarray:
    """Labels as text; numbers in one spelling ("1", "1.0" -> "1"); a missing one raises."""
    text = np.array([str(v).strip() for v in raw.tolist()], dtype=object)
    missing = np.isin(np.char.lower(text.astype(str)), ["", "nan", "none"])
    if missing.any():
        raise DataError(f"{source}: missing label for sample {int(np.flatnonzero(missing)[0])}"
                        "; every sample needs its class")
    try:
        numbers = text.astype(np.float64)
    except ValueError:
        return text.astype(str)
    if not np.isfinite(numbers).all():
        return text.astype(str)
    if np.all(numbers == np.round(numbers)):
        return np.array([str(int(v)) for v in numbers])
    return np.array([repr(float(v)) for v in numbers])


def _read_cells(path: Path, sep: str) -> np.ndarray:
    """A separated text file without header -> ``[rows, cols]`` text cells ("" if absent)."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data file not found: {path}; check the data_path value")
    try:
        frame = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "empty file"
        raise DataError(f"{path.name}: not a readable table ({reason}); check the file") from None
    return frame.fillna("").to_numpy(dtype=str)


def _to_numbers(cells: np.ndarray, path: Path, first_column: int) -> np.ndarray:
    """Text cells -> float64 (NaN for empty or "NaN" cells); the first cell that is not a
    finite number raises, by line and column (1-based, ``first_column`` for column 0)."""
    import pandas as pd

    flat = pd.Series(np.char.strip(cells.ravel().astype(str)))
    missing = flat.str.lower().isin(["", "nan"])
    numbers = pd.to_numeric(flat.mask(missing, "nan"), errors="coerce").to_numpy(np.float64)
    bad = (np.isnan(numbers) & ~missing.to_numpy()) | np.isinf(numbers)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        row, col = divmod(index, cells.shape[1])
        raise DataError(f"{path.name}: non-numeric value {flat.iloc[index]!r} at line {row + 1}, "
                        f"column {col + first_column}; fix the cell or drop the row")
    return numbers.reshape(cells.shape)


# --- readers: each returns ({"train": Table, maybe "test": Table}, channels, classes) --


def _read_har_npz(path: Path):
    keys = ("X_train", "y_train", "subject_train", "X_test", "y_test", "subject_test",
            "channels", "class_names")
    arrays = _load_npz(path, ", ".join(keys))
    if missing := [k for k in keys if k not in arrays]:
        raise DataError(f"{path.name} lacks {', '.join(missing)}; pass uci_har_inertial.npz or "
                        "the official 'UCI HAR Dataset' folder")
    classes = [str(c) for c in arrays["class_names"]]
    tables = {}
    for split in ("train", "test"):
        x = arrays[f"X_{split}"]
        if x.ndim != 3 or x.shape[1] != len(HAR_CHANNELS):
            raise DataError(f"{path.name}: X_{split} has shape {x.shape}, expected [N, 9, T]")
        y = arrays[f"y_{split}"].astype(np.int64)
        if y.min() < 0 or y.max() >= len(classes):
            raise DataError(f"{path.name}: y_{split} holds labels outside 0..{len(classes) - 1}")
        x, mask = _mask_padding(x.transpose(0, 2, 1),
                                lambda i, t, c, s=split: f"{path.name}: X_{s}[{i}, {c}, {t}]")
        tables[split] = Table(x, mask, np.array(classes)[y],
                               arrays[f"subject_{split}"].astype(np.int64), f"{path.name} {split}")
    return tables, [str(c) for c in arrays["channels"]], classes


def _read_numbers(path: Path) -> np.ndarray:
    """A whitespace-separated file of numbers (the HAR text layout) -> float64 [rows, cols]."""
    return _to_numbers(_read_cells(path, r"\s+"), path, 1)


def _read_har_folder(path: Path):
    root = path / "UCI HAR Dataset" if (path / "UCI HAR Dataset").is_dir() else path
    cells = _read_cells(root / "activity_labels.txt", r"\s+")
    if cells.shape[1] != 2:
        raise DataError(f"activity_labels.txt has {cells.shape[1]} columns, expected 2: the "
                        "number and the name of each activity")
    numbers = _to_numbers(cells[:, :1], root / "activity_labels.txt", 1)[:, 0].astype(np.int64)
    names = dict(zip(numbers.tolist(), cells[:, 1].tolist(), strict=True))
    tables = {}
    for split in ("train", "test"):
        folder = root / split
        signals = [_read_numbers(folder / "Inertial Signals" / f"{name}_{split}.txt")
                   for name in HAR_CHANNELS]
        y, subjects = (_read_numbers(folder / f"{stem}_{split}.txt")[:, 0].astype(np.int64)
                       for stem in ("y", "subject"))
        if len({s.shape for s in signals}) > 1 or {len(y), len(subjects)} != {len(signals[0])}:
            raise DataError(f"{folder}: the signal, y_{split}.txt and subject_{split}.txt files "
                            "differ in rows; use the official, unmodified files")
        if unknown := sorted(set(y.tolist()) - set(names)):
            raise DataError(f"y_{split}.txt: label {unknown[0]} is not in activity_labels.txt")
        x, mask = _mask_padding(np.stack(signals, axis=2), lambda i, t, c, s=split: (
            f"{HAR_CHANNELS[c]}_{s}.txt, line {i + 1}, column {t + 1}"))
        if not mask.all():
            line = int(np.flatnonzero(~mask.all(axis=1))[0]) + 1
            raise DataError(f"{folder.name}/Inertial Signals: line {line} has fewer values than "
                            "the others; use the official, unmodified files")
        tables[split] = Table(x, mask, np.array([names[v] for v in y.tolist()]), subjects,
                               f"{split} split of {root.name}")
    return tables, list(HAR_CHANNELS), [names[n] for n in sorted(names)]


def _split_files(path: Path, suffix: str, kind: str) -> dict[str, Path]:
    """``<Name>_TRAIN<suffix>`` (and ``_TEST``, when present) in a dataset folder."""
    folder = path.parent if path.is_file() else path
    train = sorted(folder.glob(f"*_TRAIN{suffix}"))
    if len(train) != 1:
        found = "none" if not train else ", ".join(p.name for p in train)
        raise DataError(f"{folder}: expected one <Name>_TRAIN{suffix} file, found {found}; pass "
                        f"the {kind} dataset folder as data_path")
    files = {"train": train[0]}
    test = train[0].with_name(train[0].name.replace("_TRAIN", "_TEST"))
    if test.is_file():
        files["test"] = test
    return files


def _read_ucr(path: Path):
    tables = {}
    for split, file in _split_files(path, ".tsv", "UCR").items():
        cells = _read_cells(file, "\t")
        if cells.shape[1] < 2:
            raise DataError(f"{file.name}: one column only; a UCR file holds the label, then the "
                            "values, separated by tabs")
        labels = _label_text(cells[:, 0], file.name)
        values = _to_numbers(cells[:, 1:], file, 2)[:, :, None]
        x, mask = _mask_padding(values, lambda i, t, c, f=file: (
            f"{f.name}, line {i + 1}, column {t + 2}"))
        tables[split] = Table(x, mask, labels, None, file.name)
    return tables, ["value"], None


def _ts_header(file: Path) -> tuple[int | None, dict[str, str]]:
    """The declared ``@dimensions`` and the class labels (lower case -> as written)."""
    dimensions, labels = None, {}
    with open(file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            tokens = line.split()
            key = tokens[0].lower() if tokens else ""
            if key == "@data":
                break
            if key == "@dimensions" and len(tokens) == 2 and tokens[1].isdigit():
                dimensions = int(tokens[1])
            if key == "@classlabel":
                labels = {t.lower(): t for t in tokens[2:]}
    return dimensions, labels


def _read_uea(path: Path):
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError:
        raise ConfigError("reading UEA .ts files needs aeon: pip install 'timetok[classify]'"
                          ) from None
    tables, channels = {}, None
    for split, file in _split_files(path, ".ts", "UEA").items():
        try:
            data, labels = load_from_ts_file(str(file))
        except (OSError, ValueError, IndexError) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise DataError(f"{file.name}: not a valid .ts file ({reason}); check its header "
                            "and data lines") from None
        if len(data) == 0 or len(labels) != len(data):
            raise DataError(f"{file.name}: no labelled cases after @data; each line holds a "
                            "case's channels and its class")
        declared, names = _ts_header(file)
        n_channels = data[0].shape[0]
        if declared is not None and declared != n_channels:
            raise DataError(f"{file.name}: @dimensions says {declared} but the cases have "
                            f"{n_channels} channels; fix the header or the data")
        steps = max(case.shape[1] for case in data)
        padded = np.full((len(data), steps, n_channels), np.nan)
        for i, case in enumerate(data):
            padded[i, : case.shape[1]] = case.T
        x, mask = _mask_padding(padded, lambda i, t, c, f=file: (
            f"{f.name}, case {i + 1}, channel {c + 1}, step {t + 1}"))
        text = _label_text(labels, file.name)
        if names and (undeclared := sorted(set(text.tolist()) - set(names))):
            raise DataError(f"{file.name}: class {undeclared[0]!r} is not declared in "
                            "@classLabel; add it to the header")
        tables[split] = Table(x, mask, np.array([names.get(v, v) for v in text]), None,
                               file.name)
        channels = channels or [f"dim_{c}" for c in range(n_channels)]
    return tables, channels, None


def _load_npz(path: Path, needs: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive; a file of another kind is refused by its first
    bytes (numpy would call anything but a zip file or one array pickled data)."""
    import zipfile

    fix = f"it must hold {needs}, saved with numpy.savez"
    try:
        with path.open("rb") as handle:
            head = handle.read(6)
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or err}); check the file") from None
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{path.name} holds one array (numpy.save), not an .npz archive of "
                        f"named arrays; {fix}")
    if not head.startswith(NPZ_STARTS):
        raise DataError(f"{path.name} is not an .npz archive (numpy.savez writes a zip file, "
                        f"this is none); {fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{path.name}: a damaged .npz archive ({reason}); {fix}") from None


def _read_npz(path: Path):
    arrays = _load_npz(path, NPZ_ARRAYS)
    parts = {"train": "_train", "test": "_test"} if "X_train" in arrays else {"train": ""}
    tables = {}
    for split, tail in parts.items():
        if f"X{tail}" not in arrays or f"y{tail}" not in arrays:
            raise DataError(f"{path.name} holds {', '.join(arrays) or 'no arrays'}; it needs "
                            f"{NPZ_ARRAYS}")
        x, y = arrays[f"X{tail}"], arrays[f"y{tail}"]
        if x.ndim != 3 or x.dtype.kind not in "iuf":
            raise DataError(f"{path.name}: X{tail} is {x.dtype} of shape {x.shape}, expected "
                            "numbers of shape [N, T, C] (samples, steps, channels); add a "
                            "channel axis for one channel: X[..., None]")
        if y.shape != (len(x),):
            raise DataError(f"{path.name}: y{tail} has shape {y.shape}, expected ({len(x)},): "
                            f"one class per sample of X{tail}")
        groups = arrays.get(f"groups{tail}")
        if groups is not None and groups.shape != (len(x),):
            raise DataError(f"{path.name}: groups{tail} has shape {groups.shape}, expected "
                            f"({len(x)},)")
        x, mask = _mask_padding(x, lambda i, t, c, k=f"X{tail}": f"{path.name}: {k}[{i}, {t}, {c}]")
        tables[split] = Table(x, mask, _label_text(y, f"{path.name} y{tail}"), groups,
                               f"{path.name} X{tail}")
    n_channels = tables["train"].x.shape[2]
    if any(t.x.shape[2] != n_channels for t in tables.values()):
        raise DataError(f"{path.name}: X_train and X_test differ in channels; both are [N, T, C]")
    channels = [str(c) for c in arrays.get("channels", [f"dim_{c}" for c in range(n_channels)])]
    if len(channels) != n_channels:
        raise DataError(f"{path.name}: {len(channels)} channel names for {n_channels} channels")
    return tables, channels, None


def read(protocol: str, path: Path):
    """The tables of a dataset's files (by split name, test optional), its channel names
    and, for the ``.ts`` format, the class labels its header declares."""
    if protocol == "har":
        return _read_har_folder(path) if path.is_dir() else _read_har_npz(path)
    if protocol == "npz" and path.is_dir():
        raise DataError(f"{path} is a folder; pass the .npz file as data_path")
    return {"ucr": _read_ucr, "uea": _read_uea, "npz": _read_npz}[protocol](path)
