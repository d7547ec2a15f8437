"""The labelled kind: each reader on files written in its official layout, the splits, the
scaling, the data module's artifacts, the CLI report and each bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from timetok.core.data.labelled import load_labelled
from timetok.core.data.labelled_formats import HAR_CHANNELS
from timetok.core.data.registry import BUNDLED_DIR
from timetok.core.data.scaler import Scaler
from timetok.core.errors import ConfigError, DataError
from timetok.core.model_folder import read_data_section

ACTIVITIES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING",
              "LAYING"]
NEEDS_SHARED = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                  reason=f"no shared data folder at {SHARED_DATA}")


# --- fixture writers: the official layouts, a few rows each ----------------------------


def write_har(root: Path, steps: int = 4, seed: int = 0) -> dict[str, dict]:
    """A tiny ``UCI HAR Dataset/`` folder (5 train subjects, 2 test subjects, each doing
    every activity once); returns the numbers as written, per split."""
    rng = np.random.default_rng(seed)
    base = root / "UCI HAR Dataset"
    base.mkdir(parents=True)
    (base / "activity_labels.txt").write_text(
        "".join(f"{i + 1} {name}\n" for i, name in enumerate(ACTIVITIES)))
    written = {}
    for split, subjects in (("train", [1, 3, 5, 6, 7]), ("test", [2, 4])):
        folder = base / split / "Inertial Signals"
        folder.mkdir(parents=True)
        subject = np.repeat(subjects, len(ACTIVITIES))
        label = np.tile(np.arange(1, len(ACTIVITIES) + 1), len(subjects))
        x = np.empty((len(subject), steps, len(HAR_CHANNELS)), dtype=np.float32)
        for c, name in enumerate(HAR_CHANNELS):
            cells = [[np.format_float_scientific(v, precision=7, exp_digits=3)
                      for v in rng.normal(c, 1.0 + c, size=steps)] for _ in subject]
            (folder / f"{name}_{split}.txt").write_text(
                "".join(" " + " ".join(f"{cell:>15}" for cell in row) + "\n" for row in cells))
            x[:, :, c] = np.array(cells, dtype=np.float64)
        (base / split / f"y_{split}.txt").write_text("".join(f"{v}\n" for v in label))
        (base / split / f"subject_{split}.txt").write_text("".join(f"{v}\n" for v in subject))
        written[split] = {"X": x, "y": label - 1, "subject": subject}
    return written


def har_npz(path: Path, written: dict[str, dict]) -> Path:
    """The same numbers in the layout of ``uci_har_inertial.npz`` (X as [N, C, T])."""
    arrays = {"channels": np.array(HAR_CHANNELS), "class_names": np.array(ACTIVITIES)}
    for split, part in written.items():
        arrays |= {f"X_{split}": part["X"].transpose(0, 2, 1), f"y_{split}": part["y"],
                   f"subject_{split}": part["subject"]}
    np.savez(path, **arrays)
    return path


def write_ucr(folder: Path, rows: dict[str, list[str]], name: str = "Toy") -> Path:
    """``<name>_TRAIN.tsv`` / ``_TEST.tsv`` from lines of tab-separated cells."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in rows.items():
        (folder / f"{name}_{split.upper()}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def ucr_rows(labels, steps: int = 6, seed: int = 0, pad: dict[int, int] | None = None):
    """Tab-separated lines: label, then values; ``pad`` = {row: trailing NaN count}."""
    rng = np.random.default_rng(seed)
    lines = []
    for i, label in enumerate(labels):
        values = [f"{v:.6f}" for v in rng.normal(float(label), 1.0, size=steps)]
        cut = (pad or {}).get(i, 0)
        values = values[: steps - cut] + ["NaN"] * cut
        lines.append("\t".join([str(label), *values]))
    return lines


TS_HEADER = """#A tiny problem written by hand in the UEA format
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength {equal}
{length}@classLabel true a b
@data
"""


def write_ts(folder: Path, cases: dict[str, list[str]], *, equal: bool = True,
             header: str | None = None) -> Path:
    """``Toy_TRAIN.ts`` / ``Toy_TEST.ts``: the header, then one case per line."""
    folder.mkdir(parents=True, exist_ok=True)
    head = header or TS_HEADER.format(equal=str(equal).lower(),
                                      length="@seriesLength 4\n" if equal else "")
    for split, lines in cases.items():
        (folder / f"Toy_{split.upper()}.ts").write_text(head + "\n".join(lines) + "\n")
    return folder


def ts_case(length: int, label: str, offset: float = 0.0) -> str:
    channels = [",".join(f"{offset + c * 10 + t:.1f}" for t in range(length)) for c in range(2)]
    return ":".join([*channels, label])


EQUAL_TS = {"train": [ts_case(4, lab, i) for i, lab in enumerate("aaabbb")],
            "test": [ts_case(4, lab, i) for i, lab in enumerate("abab")]}


# --- readers ---------------------------------------------------------------------------


def test_har_official_text_layout_and_npz_give_the_same_numbers(tmp_path):
    written = write_har(tmp_path / "official")
    npz = har_npz(tmp_path / "uci_har_inertial.npz", written)
    text = load_labelled("har", data_path=tmp_path / "official")
    packed = load_labelled("har", data_path=npz)
    assert text.channels == packed.channels == HAR_CHANNELS
    assert text.classes == packed.classes == ACTIVITIES
    assert text.split_rule == packed.split_rule
    assert text.split_rule == ("official test split; val by subject: 4 train / 1 val subjects, "
                               "seed 0")
    np.testing.assert_array_equal(text.scaler.mean, packed.scaler.mean)
    for split in ("train", "val", "test"):
        a, b = text.splits[split], packed.splits[split]
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.groups, b.groups)
        assert a.mask.all()
    test = text.splits["test"]  # kept as shipped: the official order, scaled by train stats
    np.testing.assert_array_equal(test.y, written["test"]["y"])
    np.testing.assert_allclose(text.scaler.inverse_transform(test.x), written["test"]["X"],
                               rtol=1e-5, atol=1e-5)


def test_har_validation_takes_whole_subjects(tmp_path):
    written = write_har(tmp_path / "official")
    for seed in range(4):
        data = load_labelled("har", data_path=tmp_path / "official", seed=seed)
        train, val = (set(data.splits[s].groups.tolist()) for s in ("train", "val"))
        assert train and val and not train & val
        assert train | val == set(written["train"]["subject"].tolist())
        assert set(data.splits["test"].groups.tolist()) == {2, 4}


@NEEDS_SHARED
def test_the_real_har_archive(tmp_path):
    data = load_labelled("har", data_dir=SHARED_DATA / "uci_har")
    sizes = {split: len(part) for split, part in data.splits.items()}
    assert sizes["train"] + sizes["val"] == 7352 and sizes["test"] == 2947
    assert (data.n_channels, data.length, data.n_classes) == (9, 128, 6)
    labels = (SHARED_DATA / "uci_har" / "orig_meta" / "activity_labels.txt").read_text()
    assert data.classes == [line.split()[1] for line in labels.splitlines() if line.strip()]
    groups = {split: set(part.groups.tolist()) for split, part in data.splits.items()}
    assert (len(groups["train"]), len(groups["val"]), len(groups["test"])) == (17, 4, 9)
    assert not groups["train"] & groups["val"] and not (groups["train"] | groups["val"]) & \
        groups["test"]
    train = data.splits["train"].x.reshape(-1, 9)
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-3)


def test_ucr_labels_sort_numerically_and_nan_padding_becomes_the_mask(tmp_path):
    labels = [2, 10, -1, 2, 10, -1, 2, 10, -1, 2, 10, -1]
    folder = write_ucr(tmp_path / "Toy", {"train": ucr_rows(labels, pad={1: 2, 4: 5}),
                                          "test": ucr_rows([2, 10, -1], seed=1, pad={0: 1})})
    data = load_labelled("ucr", data_path=folder)
    assert data.classes == ["-1", "2", "10"] and data.channels == ["value"]
    assert data.length == 6 and data.n_channels == 1
    test = data.splits["test"]
    assert test.mask[0].tolist() == [True] * 5 + [False] and test.mask[1:].all()
    assert (test.x[0, 5] == 0).all()  # padded after standardisation
    every = np.concatenate([data.splits[s].mask.sum(1) for s in ("train", "val")])
    assert sorted(every.tolist())[:2] == [1, 4]
    train = data.splits["train"]  # scaler from the observed steps only
    np.testing.assert_allclose(train.x[train.mask].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(train.x[train.mask].std(), 1, atol=1e-5)
    assert (train.x[~train.mask] == 0).all()


def test_ucr_text_labels_and_a_file_path_inside_the_folder(tmp_path):
    folder = write_ucr(tmp_path / "Toy", {"train": ucr_rows([1, 1, 1, 2, 2, 2]),
                                          "test": ucr_rows([1, 2])})
    rows = [("cat" if line[0] == "1" else "ant") + line[1:]
            for line in ucr_rows([1, 1, 1, 2, 2, 2])]
    write_ucr(tmp_path / "Text", {"train": rows, "test": rows[:2]}, name="Text")
    assert load_labelled("ucr", data_path=tmp_path / "Text").classes == ["ant", "cat"]
    data = load_labelled("ucr", data_path=folder / "Toy_TRAIN.tsv")
    assert data.path == folder / "Toy_TRAIN.tsv" and len(data.splits["test"]) == 2


@NEEDS_SHARED
@pytest.mark.parametrize("name, sizes, classes", [
    ("ecg200", (80, 20, 100), ["0", "1"]),
    ("cbf", (24, 6, 900), ["1", "2", "3"]),
    ("syntheticcontrol", (240, 60, 300), ["1", "2", "3", "4", "5", "6"]),
])
def test_the_real_ucr_folders(name, sizes, classes):
    data = load_labelled(name, data_dir=SHARED_DATA / "ucr")
    assert tuple(len(data.splits[s]) for s in ("train", "val", "test")) == sizes
    assert data.classes == classes


def test_uea_equal_and_unequal_lengths(tmp_path):
    data = load_labelled("uea", data_path=write_ts(tmp_path / "Toy", EQUAL_TS))
    assert data.classes == ["a", "b"] and data.channels == ["dim_0", "dim_1"]
    assert data.length == 4 and all(p.mask.all() for p in data.splits.values())
    test = data.splits["test"]
    np.testing.assert_allclose(data.scaler.inverse_transform(test.x[1])[:, 1],
                               [11, 12, 13, 14], rtol=1e-5)
    lengths = [3, 5, 4, 5, 3, 4]
    unequal = {"train": [ts_case(n, lab) for n, lab in zip(lengths, "aaabbb", strict=True)],
               "test": [ts_case(2, "a"), ts_case(6, "b")]}
    data = load_labelled("uea", data_path=write_ts(tmp_path / "Uneq", unequal, equal=False))
    assert data.length == 6
    test = data.splits["test"]
    assert test.mask.sum(1).tolist() == [2, 6] and (test.x[0, 2:] == 0).all()


def test_uea_keeps_the_class_names_as_written_in_the_header(tmp_path):
    header = TS_HEADER.format(equal="true", length="").replace("a b", "Walk Run")
    cases = {split: [line.replace(":a", ":Walk").replace(":b", ":Run") for line in lines]
             for split, lines in EQUAL_TS.items()}
    data = load_labelled("uea", data_path=write_ts(tmp_path / "Toy", cases, header=header))
    assert data.classes == ["Run", "Walk"]


@NEEDS_SHARED
def test_the_real_uea_folder():
    data = load_labelled("basicmotions", data_dir=SHARED_DATA / "uea")
    assert (data.n_channels, data.length) == (6, 100)
    assert data.classes == ["Badminton", "Running", "Standing", "Walking"]
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [32, 8, 40]


@pytest.mark.parametrize("arrays", [
    {"X": np.zeros((0, 8, 1)), "y": np.zeros(0)},
    {"X_train": np.zeros((4, 8, 1)), "y_train": np.arange(4) % 2, "X_test": np.zeros((0, 8, 1)),
     "y_test": np.zeros(0)},
], ids=["no-samples", "empty-test-split"])
def test_an_npz_split_without_samples_is_refused(tmp_path, arrays):
    np.savez(tmp_path / "empty.npz", **arrays)
    with pytest.raises(DataError, match="holds no samples"):
        load_labelled("npz", data_path=tmp_path / "empty.npz")


def test_npz_with_and_without_a_test_split(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    np.savez(tmp_path / "one.npz", X=rng.normal(size=(30, 8, 3)), y=y)
    data = load_labelled("npz", data_path=tmp_path / "one.npz")
    assert data.split_rule == ("test stratified 20 % of all samples; val stratified 20 % of "
                               "train, seed 0")
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    for part in data.splits.values():
        assert np.bincount(part.y).tolist() == [len(part) // 3] * 3
    np.savez(tmp_path / "two.npz", X_train=rng.normal(size=(20, 8, 2)), y_train=y[:20],
             X_test=rng.normal(size=(5, 8, 2)), y_test=y[:5], channels=np.array(["u", "v"]))
    data = load_labelled("npz", data_path=tmp_path / "two.npz")
    assert data.channels == ["u", "v"] and len(data.splits["test"]) == 5


def test_npz_groups_split_whole_groups(tmp_path):
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 4)
    np.savez(tmp_path / "g.npz", X=rng.normal(size=(40, 5, 1)), y=np.tile([0, 1], 20),
             groups=groups)
    data = load_labelled("npz", data_path=tmp_path / "g.npz", seed=3)
    sets = [set(data.splits[s].groups.tolist()) for s in ("train", "val", "test")]
    assert sum(map(len, sets)) == 10 and len(set().union(*sets)) == 10
    assert "by group" in data.split_rule


# --- splits and scaling ----------------------------------------------------------------


def test_stratified_split_keeps_each_class_share_and_a_training_sample(tmp_path):
    rng = np.random.default_rng(0)
    y_train = np.repeat([0, 1, 2, 3], [10, 20, 30, 1])
    np.savez(tmp_path / "s.npz", X_train=rng.normal(size=(61, 4, 1)), y_train=y_train,
             X_test=rng.normal(size=(4, 4, 1)), y_test=np.arange(4))
    for seed in (0, 1):
        data = load_labelled("npz", data_path=tmp_path / "s.npz", seed=seed)
        assert np.bincount(data.splits["val"].y, minlength=4).tolist() == [2, 4, 6, 0]
        assert np.bincount(data.splits["train"].y).tolist() == [8, 16, 24, 1]
    first, again = (load_labelled("npz", data_path=tmp_path / "s.npz", seed=0) for _ in "ab")
    np.testing.assert_array_equal(first.splits["val"].x, again.splits["val"].x)


def test_the_scaler_sees_the_training_split_only(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "shift.npz", X_train=rng.normal(5, 2, size=(40, 16, 2)),
             y_train=np.tile([0, 1], 20), X_test=rng.normal(100, 2, size=(10, 16, 2)),
             y_test=np.tile([0, 1], 5))
    data = load_labelled("npz", data_path=tmp_path / "shift.npz")
    train = data.splits["train"].x.reshape(-1, 2)
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-5)
    assert data.splits["val"].x.mean() != pytest.approx(0, abs=1e-6)
    assert (data.splits["test"].x.mean(axis=(0, 1)) > 30).all()


def test_dataset_items_are_views_of_one_tensor(tmp_path):
    folder = write_ucr(tmp_path / "Toy", {"train": ucr_rows([1, 2] * 5),
                                          "test": ucr_rows([1, 2], pad={1: 3})})
    data = load_labelled("ucr", data_path=folder)
    samples = data.dataset("test")
    x, y, mask = samples[1]
    assert (tuple(x.shape), x.dtype.is_floating_point, tuple(mask.shape)) == ((6, 1), True, (6,))
    assert y.item() == 1 and mask.tolist() == [True] * 3 + [False] * 3
    assert x.untyped_storage().data_ptr() == samples[0][0].untyped_storage().data_ptr()


# --- the data module -------------------------------------------------------------------


def test_data_module_loaders_and_artifacts(tmp_path):
    from timetok.mae.data import LabelledDataModule

    folder = write_ucr(tmp_path / "Toy", {"train": ucr_rows([1, 2] * 10),
                                          "test": ucr_rows([1, 2] * 3)})
    module = LabelledDataModule("ucr", batch_size=4, data_path=folder)
    batches = list(module.train_dataloader())
    assert len(batches) == 4 and all(len(b[0]) == 4 for b in batches)  # 16 samples
    x, y, mask = batches[0]
    assert tuple(x.shape) == (4, 6, 1) and tuple(mask.shape) == (4, 6) and y.dtype.is_signed
    assert sum(len(b[0]) for b in module.test_dataloader()) == 6
    assert sum(len(b[0]) for b in module.val_dataloader()) == 4
    whole = LabelledDataModule("ucr", batch_size=64, data_path=folder)
    assert [len(b[0]) for b in whole.train_dataloader()] == [16]  # one batch: not dropped
    summary = module.save_artifacts(tmp_path)
    assert summary == {"dataset": "ucr", "classes": ["1", "2"],
                       "split_rule": module.data.split_rule}
    assert read_data_section(tmp_path, "labels") == {
        "classes": ["1", "2"], "channels": ["value"], "length": 6}
    np.testing.assert_array_equal(Scaler.from_dict(read_data_section(tmp_path, "scaler")).mean,
                                  module.data.scaler.mean)
    with pytest.raises(ConfigError, match="batch_size"):
        LabelledDataModule("ucr", batch_size=0, data_path=folder)


# --- the CLI ---------------------------------------------------------------------------


def test_data_list_and_info_of_the_bundled_ecg200(cli, isolated_env):
    result = cli("data", "list", "--json")
    assert result.rc == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert {"har", "ecg200", "syntheticcontrol", "cbf", "basicmotions", "ucr", "uea",
            "npz"} <= set(rows)
    assert rows["ecg200"]["kind"] == "labelled"
    assert Path(rows["ecg200"]["location"]) == BUNDLED_DIR / "ECG200"
    assert rows["har"]["licence"] == "CC BY 4.0" and rows["npz"]["location"].startswith("any")
    assert rows["ecg200"]["licence"].startswith("none stated")
    text = cli("data", "list").out  # every dataset's licence and whole path, at any width
    assert "ecg200 (labelled, 200 samples x 1 channel x 96 · none stated" in text
    assert f"  {BUNDLED_DIR / 'ECG200'}\n" in text
    result = cli("data", "info", "ecg200", "--json")
    assert result.rc == 0, result.err
    report = json.loads(result.out)
    assert report["classes"] == ["0", "1"] and report["length"] == 96
    assert {s: r["samples"] for s, r in report["splits"].items()} == {
        "train": 80, "val": 20, "test": 100}
    assert sum(report["splits"]["train"]["classes"].values()) == 80
    assert report["citation"] == "Dau et al., UCR archive 2018"
    text = cli("data", "info", "ecg200").out
    assert text.startswith("ecg200 (labelled): 200 samples x 1 channel (value) x 96 steps")
    assert "val stratified 20 % of train, seed 0" in text


@NEEDS_SHARED
def test_data_info_har(cli):
    result = cli("data", "info", "har", "--data-dir", SHARED_DATA / "uci_har")
    assert result.rc == 0, result.err
    assert "10,299 samples x 9 channels" in result.out and "17 train / 4 val subjects" in result.out
    assert "WALKING_UPSTAIRS" in result.out and "licence CC BY 4.0" in result.out


def test_data_info_reports_a_bad_file_in_one_line(cli, tmp_path):
    folder = write_ucr(tmp_path / "Toy", {"train": ["1\t0.5\tabc", "2\t0.1\t0.2"]})
    cli("data", "info", "ucr", "--data-path", folder).assert_error(
        "Toy_TRAIN.tsv", "non-numeric value 'abc' at line 1, column 3")


# --- bad input -------------------------------------------------------------------------


def test_bad_ucr_files(tmp_path):
    def load(train):
        return load_labelled("ucr", data_path=write_ucr(tmp_path / "Toy", {"train": train}))

    with pytest.raises(DataError, match=r"Toy_TRAIN.tsv: missing label for sample 1"):
        load(["1\t0.1\t0.2", "\t0.3\t0.4", "2\t0.5\t0.6"])
    with pytest.raises(DataError, match=r"non-numeric value 'x1' at line 2, column 3"):
        load(["1\t0.1\t0.2", "2\t0.3\tx1"])
    with pytest.raises(DataError, match="every training sample has class '1'.*two classes"):
        load(ucr_rows([1, 1, 1]))
    with pytest.raises(DataError, match=r"line 1, column 2: missing .* inside the series"):
        load(["1\tNaN\t0.2", "2\t0.3\t0.4"])
    with pytest.raises(DataError, match="expected one <Name>_TRAIN.tsv file, found none"):
        load_labelled("ucr", data_path=tmp_path)


def test_a_test_class_missing_from_train_is_refused(tmp_path):
    folder = write_ucr(tmp_path / "Toy", {"train": ucr_rows([1, 2] * 3),
                                          "test": ucr_rows([1, 3])})
    with pytest.raises(DataError, match="Toy_TEST.tsv: class '3' does not occur in the train"):
        load_labelled("ucr", data_path=folder)


def test_bad_ts_files(tmp_path):
    malformed = TS_HEADER.format(equal="true", length="").replace("@classLabel true a b",
                                                                  "@classLabel true")
    with pytest.raises(DataError, match=r"Toy_TRAIN.ts: not a valid .ts file \(if the "
                                        r"classlabel tag is true then class values"):
        load_labelled("uea", data_path=write_ts(tmp_path / "a", EQUAL_TS, header=malformed))
    wrong = {"train": [*EQUAL_TS["train"], "1,2,3,4:b"], "test": EQUAL_TS["test"]}
    with pytest.raises(DataError, match=r"Inconsistent number of dimensions in case 7"):
        load_labelled("uea", data_path=write_ts(tmp_path / "b", wrong))
    header = TS_HEADER.format(equal="true", length="").replace("@dimensions 2", "@dimensions 3")
    with pytest.raises(DataError, match="@dimensions says 3 but the cases have 2 channels"):
        load_labelled("uea", data_path=write_ts(tmp_path / "c", EQUAL_TS, header=header))
    undeclared = {"train": [*EQUAL_TS["train"], ts_case(4, "c")], "test": EQUAL_TS["test"]}
    with pytest.raises(DataError, match="class 'c' is not declared in @classLabel"):
        load_labelled("uea", data_path=write_ts(tmp_path / "d", undeclared))


def test_uea_without_aeon_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(ConfigError, match=r"pip install 'timetok\[classify\]'"):
        load_labelled("uea", data_path=write_ts(tmp_path / "Toy", EQUAL_TS))


@pytest.mark.parametrize("shape", [(10, 16), (10, 4, 4, 2)])
def test_npz_of_the_wrong_shape(tmp_path, shape):
    np.savez(tmp_path / "bad.npz", X=np.zeros(shape), y=np.arange(10) % 2)
    with pytest.raises(DataError, match=rf"X is float64 of shape \({shape[0]}, .*expected "
                                        r"numbers of shape \[N, T, C\]"):
        load_labelled("npz", data_path=tmp_path / "bad.npz")


def test_other_bad_npz_files(tmp_path):
    np.savez(tmp_path / "keys.npz", data=np.zeros((4, 3, 1)))
    with pytest.raises(DataError, match="holds data; it needs X and y"):
        load_labelled("npz", data_path=tmp_path / "keys.npz")
    np.savez(tmp_path / "y.npz", X=np.zeros((4, 3, 1)), y=np.zeros(5))
    with pytest.raises(DataError, match=r"y has shape \(5,\), expected \(4,\)"):
        load_labelled("npz", data_path=tmp_path / "y.npz")
    np.savez(tmp_path / "nan.npz", X=np.zeros((4, 3, 1)), y=np.array([0, 1, np.nan, 1]))
    with pytest.raises(DataError, match="missing label for sample 2"):
        load_labelled("npz", data_path=tmp_path / "nan.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError, match="text.npz is not an .npz archive"):
        load_labelled("npz", data_path=tmp_path / "text.npz")


def test_too_short_series_and_bad_parameters(tmp_path):
    folder = write_ucr(tmp_path / "Toy", {"train": ucr_rows([1, 2] * 4, pad={3: 4}),
                                          "test": ucr_rows([1, 2])})
    assert load_labelled("ucr", data_path=folder, min_length=2).length == 6
    with pytest.raises(DataError, match="Toy_TRAIN.tsv: sample 3 has 2 observed steps, fewer "
                                        "than min_length 3"):
        load_labelled("ucr", data_path=folder, min_length=3)
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(DataError, match=f"val_fraction must be between 0 and 1.*got {bad}"):
            load_labelled("ucr", data_path=folder, val_fraction=bad)
    tiny = write_ucr(tmp_path / "Tiny", {"train": ucr_rows([1, 1, 2, 2]), "test": ucr_rows([1, 2])})
    with pytest.raises(DataError, match="a val split of 0.2 takes no sample of 4 .* raise "
                                        "val_fraction"):
        load_labelled("ucr", data_path=tiny)
    with pytest.raises(DataError, match="min_length must be a whole number >= 1, got 0"):
        load_labelled("ucr", data_path=folder, min_length=0)
    with pytest.raises(DataError, match="seed must be a whole number >= 0, got -1"):
        load_labelled("ucr", data_path=folder, seed=-1)
    with pytest.raises(DataError, match="holds series, not labelled samples"):
        load_labelled("etth1")
    with pytest.raises(DataError, match="dataset 'ucr' needs a file: pass data_path"):
        load_labelled("ucr")
