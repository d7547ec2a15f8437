"""The records kind: PhysioNet 2012 in its official layouts with each known quirk, the long
table, splits, scaling, sets and their batches, the cache, the CLI report and each bad
input."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from timetok.core.data import records_formats
from timetok.core.data.records import (
    RecordsReport,
    RecordsScaler,
    collate_sets,
    load_records,
    make_sets,
)
from timetok.core.data.registry import cache_dir
from timetok.core.errors import DataError

PHYSIONET = SHARED_DATA / "physionet2012"
NEEDS_ARCHIVE = pytest.mark.skipif(not (PHYSIONET / "physionet2012_raw_abc.tar.gz").is_file(),
                                   reason=f"no PhysioNet 2012 archive in {PHYSIONET}")
HEADER = "Time,Parameter,Value"
OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"


@pytest.fixture(autouse=True)
def _own_cache(isolated_env):
    """Every test caches into its own empty folder."""


# --- fixture writers: the official layout, one quirk or more per stay ------------------


def statics(record: str, age=54, gender=0, height=-1, icu=4, weight=80) -> list[str]:
    return [f"00:00,RecordID,{record}", f"00:00,Age,{age}", f"00:00,Gender,{gender}",
            f"00:00,Height,{height}", f"00:00,ICUType,{icu}", f"00:00,Weight,{weight}"]


# set -> record -> lines; outcomes: set -> [(record, label)]
STAYS = {
    "a": {
        "1001": [*statics("1001"), "00:07,HR,73", "00:07,Temp,35.1", "00:37,HR,77",
                 "00:37,MAP,0",  # an impossible zero: dropped
                 "01:37,HR,60", "01:37,Weight,81"],  # Weight after admission: set aside
        "1002": [*statics("1002", 70, 1, 170, 2, -1),  # Weight -1: missing
                 "00:10,pH,735",  # pH written x100: changed to 7.35
                 "00:10,NIDiasABP,-1",  # the missing marker on a series
                 "02:00,HR,90", "02:00,HR,95",  # one variable twice at one time: both kept
                 "03:30,Temp,2.5"],  # implausible: dropped by the range rule
        "1003": statics("1003", 60, 1, 180, 3, 75),  # no time series at all: dropped
    },
    "b": {"2001": [*statics("2001", 81, 0, 160, 1, 60), "05:15,Glucose,120",
                   "05:15,Temp,-17.8",  # negative: dropped
                   "05:20,Lactat,2.1"]},  # an unknown parameter: set aside
    "c": {"3001": [*statics("3001", 45, 1, 175, 3, 90), "10:45,,1.9",  # empty parameter
                   "10:45,HR,80"]},
}
OUTCOMES = {"a": [("1001", 0), ("1002", 1), ("1003", 0), ("1999", 1)],  # 1999: no record
            "b": [("2001", 1)], "c": [("3001", 0)]}


def write_physionet(root: Path, stays: dict | None = None, outcomes: dict | None = None) -> Path:
    """``set-x/<RecordID>.txt`` and ``Outcomes-x.txt`` under ``root`` (default: ``STAYS``
    and ``OUTCOMES``)."""
    for s, records in (STAYS if stays is None else stays).items():
        (root / f"set-{s}").mkdir(parents=True)
        for record, lines in records.items():
            (root / f"set-{s}" / f"{record}.txt").write_text("\n".join([HEADER, *lines]) + "\n")
    for s, rows in (OUTCOMES if outcomes is None else outcomes).items():
        lines = [f"{record},10,5,7,-1,{label}" for record, label in rows]
        (root / f"Outcomes-{s}.txt").write_text("\n".join([OUTCOMES_HEADER, *lines]) + "\n")
    return root


def pack(folder: Path, archive: Path, top: str = "") -> Path:
    """A .tar.gz of everything in ``folder``, under the folder name ``top`` if given."""
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(folder.iterdir()):
            tar.add(item, arcname=f"{top}{item.name}")
    return archive


def write_long_table(folder: Path, rows: list[str], labels: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.csv").write_text("\n".join(["stay_id,time,variable,value", *rows]) + "\n")
    (folder / "labels.csv").write_text("\n".join(["stay_id,label", *labels]) + "\n")
    return folder


def many_stays(folder: Path, n: int = 300, positive: float = 0.15, seed: int = 0) -> Path:
    """``n`` stays of 1-8 observations of three variables, and an age, in a long table."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n):
        label = int(rng.random() < positive)
        labels.append(f"s{i:03d},{label}")
        rows.append(f"s{i:03d},,Age,{rng.integers(20, 90)}")
        for _ in range(rng.integers(1, 9)):
            variable = rng.choice(["HR", "Temp", "pH"])
            rows.append(f"s{i:03d},{rng.integers(0, 48 * 60) / 60:.4f},{variable},"
                        f"{rng.normal(10 + 5 * label, 2):.3f}")
    return write_long_table(folder, rows, labels)


def set_aside(report: RecordsReport) -> int:
    """The lines not kept: each line read is kept (a series or static value) or counted once
    for one reason."""
    return (sum(report.empty_parameter.values()) + sum(report.unknown_parameter.values())
            + sum(report.missing.values()) + sum(report.statics_set_aside.values())
            + report.identifiers + sum(sum(c.values()) for c in report.dropped.values()))


# --- PhysioNet 2012: layouts and quirks ------------------------------------------------


def test_each_quirk_is_counted_exactly(tmp_path):
    records = load_records("physionet2012", data_path=write_physionet(tmp_path / "p12"))
    report = records.report
    assert (report.stays_read, report.stays_kept, report.no_series) == (5, 4, ["1003"])
    assert report.empty_parameter == {"set-c": 1}
    assert report.missing == {"Height": 1, "NIDiasABP": 1, "Weight": 1}
    assert report.dropped == {"negative": {"Temp": 1}, "zero": {"MAP": 1},
                              "range": {"Temp": 1}}
    assert report.changed == {"pH x100": {"pH": 1}}
    assert report.statics_set_aside == {"Weight": 1}
    assert report.duplicates == {"HR": 1}
    assert report.outcomes_without_record == {"Outcomes-a.txt": 1}
    assert (report.identifiers, report.unknown_parameter) == (5, {"Lactat": 1})
    assert report.lines_read == sum(len(v) for s in STAYS.values() for v in s.values())
    assert report.observations + report.statics + set_aside(report) == report.lines_read
    assert report.observations == len(records.values) == 9
    text = "\n".join(report.lines())
    for fragment in ("5 stays read, 4 kept", "1 stays dropped with no time-series "
                     "observation: 1003", "empty parameter name, set aside: set-c 1",
                     "by rule 'zero'", "by rule 'pH x100'", "Weight 1", "HR 1"):
        assert fragment in text


def test_the_arrays_of_the_stays(tmp_path):
    records = load_records("physionet2012", data_path=write_physionet(tmp_path / "p12"))
    assert records.ids.tolist() == ["1001", "1002", "2001", "3001"]
    assert records.sources.tolist() == ["set-a", "set-a", "set-b", "set-c"]
    assert records.labels.tolist() == [0, 1, 1, 0]
    assert len(records.variable_names) == 36 and records.variable_names[-1] == "pH"
    assert records.static_names == ["Age", "Gender", "Height", "ICUType", "Weight"]
    np.testing.assert_array_equal(records.statics[1], [70, 1, 170, 2, np.nan])
    assert np.isnan(records.statics[0, 2]) and records.statics[0, 4] == 80
    assert records.offsets.tolist() == [0, 4, 7, 8, 9]
    stay = slice(records.offsets[1], records.offsets[2])
    assert [records.variable_names[v] for v in records.variables[stay]] == ["pH", "HR", "HR"]
    np.testing.assert_allclose(records.times[stay], [10 / 60, 2, 2], rtol=1e-6)
    np.testing.assert_allclose(records.values[stay], [7.35, 90, 95], rtol=1e-6)
    np.testing.assert_allclose(records.times[:4], np.array([7, 7, 37, 97]) / 60, rtol=1e-6)
    assert records.times.dtype == np.float32 and records.variables.dtype == np.int32


def test_a_folder_a_tar_gz_and_the_official_downloads_read_the_same(tmp_path):
    folder = write_physionet(tmp_path / "p12")
    archive = pack(folder, tmp_path / "physionet2012_raw_abc.tar.gz")
    nested = pack(folder, tmp_path / "nested.tar.gz", top="challenge-2012/")
    downloads = tmp_path / "downloads"  # set-a.tar.gz ... beside Outcomes-a.txt ...
    downloads.mkdir()
    for s in "abc":
        with tarfile.open(downloads / f"set-{s}.tar.gz", "w:gz") as tar:
            tar.add(folder / f"set-{s}", arcname=f"set-{s}")
        (downloads / f"Outcomes-{s}.txt").write_bytes((folder / f"Outcomes-{s}.txt").read_bytes())
    first = load_records("physionet2012", data_path=folder)
    found = load_records("physionet2012", data_dir=tmp_path)  # the archive, by its name
    assert found.path == archive
    for other in (found, load_records("physionet2012", data_path=nested),
                  load_records("physionet2012", data_path=downloads)):
        for key in ("ids", "labels", "offsets", "times", "variables", "values"):
            np.testing.assert_array_equal(getattr(first, key), getattr(other, key))
        np.testing.assert_array_equal(first.statics, other.statics)
        counted = {**other.report.to_dict(), "source": first.report.source}
        assert counted == first.report.to_dict()  # every quirk counted alike


def test_only_the_sets_asked_for(tmp_path):
    records = load_records("physionet2012", data_path=write_physionet(tmp_path / "p12"),
                           sets=("c", "a"))
    assert records.sources.tolist() == ["set-a", "set-a", "set-c"]
    assert records.report.outcomes_without_record == {"Outcomes-a.txt": 1}


def test_the_report_is_saved_and_read_back(tmp_path):
    records = load_records("physionet2012", data_path=write_physionet(tmp_path / "p12"))
    records.report.save(tmp_path / "out" / "records_report.json")
    again = RecordsReport.load(tmp_path / "out" / "records_report.json")
    assert again == records.report
    assert json.loads((tmp_path / "out" / "records_report.json").read_text())["stays_kept"] == 4
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="cannot read the records report"):
        RecordsReport.load(tmp_path / "bad.json")


# --- the long table --------------------------------------------------------------------


def test_a_long_table_with_statics_and_empty_values(tmp_path):
    folder = write_long_table(tmp_path / "mine", [
        "b,0.5,HR,80", "a,,Age,64", "a,1.25,HR,", "a,0.25,HR,72", "a,0.25,SpO2,97",
        "a,,Age,65",  # a second static of one stay: set aside
        "b,0.5,,3", "c,,Age,50",  # c: a static only, so no series
    ], ["c,0", "b,1", "a,0"])
    records = load_records("records-csv", data_path=folder)
    assert records.ids.tolist() == ["a", "b"] and records.labels.tolist() == [0, 1]
    assert records.variable_names == ["HR", "SpO2"] and records.static_names == ["Age"]
    np.testing.assert_array_equal(records.statics[:, 0], [64, np.nan])  # b has no age
    assert records.counts().tolist() == [2, 1]
    report = records.report
    assert (report.stays_read, report.no_series, report.lines_read) == (3, ["c"], 8)
    assert report.missing == {"HR": 1} and report.empty_parameter == {"records.csv": 1}
    assert report.statics_set_aside == {"Age": 1}
    assert report.dropped == {} and report.changed == {}
    same = load_records("records-csv", data_path=folder / "records.csv")
    np.testing.assert_array_equal(same.values, records.values)


# --- splits and scaling ----------------------------------------------------------------


def test_five_fixed_stratified_splits(tmp_path):
    records = load_records("records-csv", data_path=many_stays(tmp_path / "t"))
    share = records.labels.mean()
    seen_tests = []
    for k in range(5):
        train, val, test = records.split(k)
        assert len(np.intersect1d(train, val)) == len(np.intersect1d(train, test)) == 0
        assert len(np.intersect1d(val, test)) == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])),
                                      np.arange(len(records)))
        assert abs(len(test) - 0.1 * len(records)) <= 2 and abs(len(val) - 30) <= 2
        for part in (train, val, test):
            assert abs(records.labels[part].mean() - share) < 0.03
        again = load_records("records-csv", data_path=tmp_path / "t", cache=False).split(k)
        for a, b in zip((train, val, test), again, strict=True):
            np.testing.assert_array_equal(a, b)
        seen_tests.append(set(test.tolist()))
    assert len({frozenset(t) for t in seen_tests}) == 5  # five different splits
    assert not np.array_equal(records.split(0, seed=1)[2], records.split(0)[2])


def test_the_scaler_sees_the_training_stays_only(tmp_path):
    records = load_records("records-csv", data_path=many_stays(tmp_path / "t"))
    train, _, test = records.split(0)
    scaler = RecordsScaler.fit(records, train)
    rows = records.observations(test)
    records.values[rows] *= 100  # the test stays change; the fitted statistics must not
    records.statics[test] += 1000
    again = RecordsScaler.fit(records, train)
    np.testing.assert_array_equal(scaler.series.mean, again.series.mean)
    np.testing.assert_array_equal(scaler.statics.std, again.statics.std)
    assert scaler.series.columns == ["HR", "Temp", "pH"] and scaler.statics.columns == ["Age"]
    sets = make_sets(records, train, scaler)
    for v in range(3):
        standard = sets.values[sets.variables == v]
        assert abs(standard.mean()) < 1e-5 and abs(standard.std() - 1) < 1e-4
    statics, mask = scaler.transform_statics(records.statics[train])
    assert mask.all() and abs(statics.mean()) < 1e-5
    loaded = RecordsScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(loaded.series.std, scaler.series.std)


def test_a_missing_static_stays_missing_with_its_mask(tmp_path):
    records = load_records("physionet2012", data_path=write_physionet(tmp_path / "p12"))
    scaler = RecordsScaler.fit(records, np.arange(len(records)))
    statics, mask = scaler.transform_statics(records.statics)
    assert mask.tolist()[1] == [True, True, True, True, False]
    assert statics[1, 4] == 0 and not np.isnan(statics).any()
    assert scaler.statics.mean[2] == pytest.approx(np.mean([170, 160, 175]))  # Height: 3 seen


# --- sets and batches ------------------------------------------------------------------


def hand_made(folder: Path) -> Path:
    """Stay x: 00:10 HR, MAP; 00:40 HR; 01:00 Temp; 01:59 HR; 03:05 HR twice. Stay y: 0:30."""
    return write_long_table(folder, [
        "x,0.1666667,HR,70", "x,0.1666667,MAP,80", "x,0.6666667,HR,71", "x,1,Temp,37",
        "x,1.9833333,HR,72", "x,3.0833333,HR,73", "x,3.0833333,HR,74", "y,0.5,HR,90",
    ], ["x,1", "y,0"])


def test_exact_and_hourly_buckets(tmp_path):
    records = load_records("records-csv", data_path=hand_made(tmp_path / "h"))
    scaler = RecordsScaler.fit(records, np.arange(2))
    exact = make_sets(records, np.array([0, 1]), scaler)
    assert exact.n_sets().tolist() == [5, 1] and records.n_times().tolist() == [5, 1]
    np.testing.assert_allclose(exact.set_times[:5], [1 / 6, 2 / 3, 1, 1.9833333, 3.0833333],
                               rtol=1e-6)
    hourly = make_sets(records, np.array([0, 1]), scaler, bucket=1.0)
    assert hourly.n_sets().tolist() == [3, 1]
    assert hourly.set_times.tolist() == [0, 1, 3, 0]
    stay = hourly[0]
    assert stay.set_index.tolist() == [0, 0, 0, 1, 1, 2, 2] and stay.label == 1
    assert make_sets(records, np.array([0]), scaler, bucket=0.5).n_sets().tolist() == [5]
    assert make_sets(records, np.array([0]), scaler, bucket=2).n_sets().tolist() == [2]
    only_y = make_sets(records, np.array([1]), scaler, bucket=1.0)
    assert len(only_y) == 1 and only_y.ids.tolist() == ["y"]


def test_collate_pads_sets_and_observations(tmp_path):
    records = load_records("records-csv", data_path=hand_made(tmp_path / "h"))
    scaler = RecordsScaler.fit(records, np.arange(2))
    sets = make_sets(records, np.array([0, 1]), scaler, bucket=1.0)
    batch = collate_sets([sets[1], sets[0]])
    assert tuple(batch.values.shape) == (2, 3, 3)  # 2 stays, 3 sets, at most 3 in a set
    assert batch.obs_mask.sum(dim=(1, 2)).tolist() == [1, 7]
    assert batch.obs_mask[1].sum(dim=1).tolist() == [3, 2, 2]
    assert batch.set_mask.tolist() == [[True, False, False], [True, True, True]]
    assert batch.set_times[1].tolist() == [0, 1, 3] and batch.set_times[0].tolist() == [0, 0, 0]
    hr = records.variable_names.index("HR")
    assert batch.variables[1, 2].tolist() == [hr, hr, 0]
    np.testing.assert_allclose(batch.times[1, 2, :2].numpy(), [3.0833333, 3.0833333], rtol=1e-6)
    np.testing.assert_allclose(batch.values[1, 0].numpy(), sets[0].values[:3])
    assert (batch.values[~batch.obs_mask] == 0).all() and (batch.times[~batch.obs_mask] == 0).all()
    assert batch.labels.tolist() == [0, 1] and tuple(batch.statics.shape) == (2, 0)
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(sets, batch_size=2, collate_fn=collate_sets)
    assert [tuple(b.values.shape) for b in loader] == [(2, 3, 3)]
    assert batch.values.dtype == torch.float32 and batch.variables.dtype == torch.int64


# --- the cache -------------------------------------------------------------------------


@pytest.fixture
def parses(monkeypatch) -> list[Path]:
    """The sources the PhysioNet parser reads, call by call."""
    calls = []
    parse = records_formats.read_physionet

    def counted(path, sets):
        calls.append(path)
        return parse(path, sets)

    monkeypatch.setattr(records_formats, "read_physionet", counted)
    return calls


def test_a_second_load_reads_the_cache(tmp_path, parses):
    folder = write_physionet(tmp_path / "p12")
    first = load_records("physionet2012", data_path=folder)
    cached = list((cache_dir() / "records").glob("physionet2012-*.npz"))
    assert len(cached) == 1 and len(parses) == 1
    with np.load(cached[0], allow_pickle=False) as npz:
        assert "values" in npz and npz["values"].dtype == np.float32
    second = load_records("physionet2012", data_path=folder)
    assert len(parses) == 1  # not parsed again
    for key in ("ids", "sources", "labels", "offsets", "times", "variables", "values"):
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key))
    np.testing.assert_array_equal(first.statics, second.statics)
    assert second.report == first.report and second.variable_names == first.variable_names


def test_the_cache_follows_the_settings_and_the_source(tmp_path, parses):
    folder = write_physionet(tmp_path / "p12")
    load_records("physionet2012", data_path=folder)
    assert len(load_records("physionet2012", data_path=folder, sets=("a",))) == 2
    assert len(parses) == 2  # other sets: parsed again, into another cache file
    assert len(list((cache_dir() / "records").glob("*.npz"))) == 2
    record = folder / "set-b" / "2001.txt"
    record.write_text(record.read_text() + "06:00,HR,88\n")
    assert load_records("physionet2012", data_path=folder).counts()[2] == 2
    assert len(parses) == 3  # a changed source: parsed again, its stale file replaced
    assert len(list((cache_dir() / "records").glob("*.npz"))) == 2
    load_records("physionet2012", data_path=folder, cache=False)
    assert len(parses) == 4 and len(list((cache_dir() / "records").glob("*.npz"))) == 2


def test_a_broken_cache_file_is_parsed_again(tmp_path, parses, caplog):
    folder = write_physionet(tmp_path / "p12")
    load_records("physionet2012", data_path=folder)
    (cached,) = (cache_dir() / "records").glob("*.npz")
    cached.write_bytes(b"not a zip")
    assert len(load_records("physionet2012", data_path=folder)) == 4
    assert len(parses) == 2 and any("unreadable records cache" in r.getMessage()
                                    for r in caplog.records)
    assert len(load_records("physionet2012", data_path=folder)) == 4 and len(parses) == 2


# --- the CLI ---------------------------------------------------------------------------


def test_data_list_info_and_fetch(cli, tmp_path):
    folder = write_physionet(tmp_path / "p12")
    rows = {row["name"]: row for row in json.loads(cli("data", "list", "--json").out)}
    assert rows["physionet2012"]["kind"] == rows["records-csv"]["kind"] == "records"
    assert rows["physionet2012"]["licence"] == "ODC-By 1.0"
    assert rows["records-csv"]["location"].startswith("any file")
    result = cli("data", "info", "physionet2012", "--data-path", folder)
    assert result.rc == 0, result.err
    assert result.out.startswith("physionet2012 (records): 4 stays (of 5 read) x 36 variables")
    for fragment in ("label: 2 positive (50.0 %)", "median of 2 observations at 1.5 distinct",
                     "1 lines with an empty parameter name", "cite Silva et al., CinC 2012"):
        assert fragment in result.out
    report = json.loads(cli("data", "info", "physionet2012", "--data-path", folder, "--json").out)
    assert report["report"]["empty_parameter"] == {"set-c": 1} and report["stays"] == 4
    cli("data", "fetch", "records-csv").assert_error("has no official download")


def test_data_info_reports_a_bad_record_in_one_line(cli, tmp_path):
    folder = write_physionet(tmp_path / "p12", {**STAYS, "b": {"2001": ["00:00,HR,x"]}})
    cli("data", "info", "physionet2012", "--data-path", folder).assert_error(
        "set-b/2001.txt, line 2: non-numeric value 'x' for HR")


# --- bad input -------------------------------------------------------------------------


def with_record(tmp_path: Path, lines: list[str], header: str = HEADER) -> Path:
    folder = write_physionet(tmp_path / "p12")
    (folder / "set-b" / "2001.txt").write_text("\n".join([header, *lines]) + "\n")
    return folder


@pytest.mark.parametrize("lines, header, message", [
    (["00:00,HR,1"], "Time,Param,Value", r"set-b/2001.txt: header 'Time,Param,Value', "
                                         r"expected 'Time,Parameter,Value'"),
    (["00:00,Age,81", "00:07,HR,abc"], HEADER,
     r"set-b/2001.txt, line 3: non-numeric value 'abc' for HR; fix or remove the line"),
    (["00:07,HR,inf"], HEADER, r"line 2: non-numeric value 'inf'"),
    (["00:07,HR,1,2"], HEADER, r"line 2: 4 fields, expected 3"),
    (["00:07,HR,1", "", "00:09,HR,2"], HEADER, r"line 3: 1 fields, expected 3"),
    (["7h05,HR,1"], HEADER, r"line 2: time '7h05' is not HH:MM"),
    ([",HR,1"], HEADER, r"line 2: time '' is not HH:MM"),
])
def test_bad_record_files(tmp_path, lines, header, message):
    with pytest.raises(DataError, match=message):
        load_records("physionet2012", data_path=with_record(tmp_path, lines, header))


def test_bad_outcomes(tmp_path):
    short = {**OUTCOMES, "a": [("1001", 0), ("1003", 0)]}
    with pytest.raises(DataError, match=r"Outcomes-a.txt has no outcome for record 1002 "
                                        r"\(.*set-a/1002.txt\)"):
        load_records("physionet2012", data_path=write_physionet(tmp_path / "a", outcomes=short))
    two = {**OUTCOMES, "b": [("2001", 1), ("2001", 0)]}
    with pytest.raises(DataError, match="Outcomes-b.txt, line 3: record 2001 appears twice"):
        load_records("physionet2012", data_path=write_physionet(tmp_path / "b", outcomes=two))
    odd = {**OUTCOMES, "c": [("3001", 2)]}
    with pytest.raises(DataError, match="Outcomes-c.txt, line 2: In-hospital_death '2' is not"):
        load_records("physionet2012", data_path=write_physionet(tmp_path / "c", outcomes=odd))
    folder = write_physionet(tmp_path / "d")
    (folder / "Outcomes-c.txt").write_text("RecordID,Death\n3001,0\n")
    with pytest.raises(DataError, match="header 'RecordID,Death' lacks RecordID or In-hosp"):
        load_records("physionet2012", data_path=folder)
    (folder / "Outcomes-c.txt").unlink()
    with pytest.raises(DataError, match="holds no Outcomes-c.txt"):
        load_records("physionet2012", data_path=folder)


def test_missing_sets_and_unreadable_archives(tmp_path):
    folder = write_physionet(tmp_path / "p12", {k: v for k, v in STAYS.items() if k != "b"})
    with pytest.raises(DataError, match="holds neither set-b/ nor set-b.tar.gz"):
        load_records("physionet2012", data_path=folder)
    archive = pack(folder, tmp_path / "ac.tar.gz")
    with pytest.raises(DataError, match="ac.tar.gz holds no set-b/ record files"):
        load_records("physionet2012", data_path=archive)
    assert len(load_records("physionet2012", data_path=archive, sets=("a", "c"))) == 3
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip" * 10)
    with pytest.raises(DataError, match="junk.tar.gz: not a readable .tar.gz archive"):
        load_records("physionet2012", data_path=tmp_path / "junk.tar.gz")
    whole = pack(write_physionet(tmp_path / "full"), tmp_path / "full.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cut.tar.gz: not a readable .tar.gz archive.*download"):
        load_records("physionet2012", data_path=tmp_path / "cut.tar.gz")


def test_bad_long_tables(tmp_path):
    def load(rows, labels=("a,0",), header="stay_id,time,variable,value"):
        folder = write_long_table(tmp_path / "t", rows, list(labels))
        text = (folder / "records.csv").read_text().split("\n", 1)[1]
        (folder / "records.csv").write_text(header + "\n" + text)
        return load_records("records-csv", data_path=folder, cache=False)

    with pytest.raises(DataError, match=r"records.csv: no column 'value' \(found stay_id,time,"
                                        r"variable\); write the header stay_id,time,variable"):
        load(["a,1,HR"], header="stay_id,time,variable")
    with pytest.raises(DataError, match=r"records.csv, line 3: non-numeric value 'high'"):
        load(["a,1,HR,80", "a,2,HR,high"])
    with pytest.raises(DataError, match=r"records.csv, line 2: non-numeric time '1:30'"):
        load(["a,1:30,HR,80"])
    with pytest.raises(DataError, match=r"records.csv, line 3: time '-0.5' is before "
                                        r"admission; .* shift the stay's times or remove"):
        load(["a,1,HR,80", "a,-0.5,HR,81"])
    with pytest.raises(DataError, match=r"labels.csv, line 3: stay 'zz' is not in records.csv"):
        load(["a,1,HR,80"], labels=("a,0", "zz,1"))
    with pytest.raises(DataError, match=r"stay 'b' of records.csv has no label in labels.csv"):
        load(["a,1,HR,80", "b,1,HR,80"])
    with pytest.raises(DataError, match=r"labels.csv, line 2: non-numeric label 'yes'"):
        load(["a,1,HR,80"], labels=("a,yes",))
    for label in ("0.5", "-1", ""):
        with pytest.raises(DataError, match=rf"line 2: label '{label}' is not a whole number"):
            load(["a,1,HR,80"], labels=(f"a,{label}",))
    with pytest.raises(DataError, match=r"labels.csv, line 3: stay 'a' appears twice"):
        load(["a,1,HR,80"], labels=("a,0", "a,1"))
    with pytest.raises(DataError, match=r"line 2: empty stay_id"):
        load([",1,HR,80"])
    (tmp_path / "t" / "labels.csv").unlink()
    with pytest.raises(DataError, match=r"labels.csv not found; .* header stay_id,label"):
        load_records("records-csv", data_path=tmp_path / "t")


def test_bad_parameters(tmp_path):
    folder = write_physionet(tmp_path / "p12")
    for sets in ((), ("a", "a"), ("d",)):
        with pytest.raises(DataError, match="sets must be distinct names among a, b, c"):
            load_records("physionet2012", data_path=folder, sets=sets)
    records = load_records("physionet2012", data_path=folder)
    for k in (5, -1, 1.0, True):
        with pytest.raises(DataError, match=f"split must be 0 to 4, got {k!r}"):
            records.split(k)
    with pytest.raises(DataError, match="seed must be a whole number >= 0, got -1"):
        records.split(0, seed=-1)
    with pytest.raises(DataError, match="4 stays are too few for an 80/10/10 split"):
        records.split(0)
    scaler = RecordsScaler.fit(records, np.arange(4))
    for bucket in (0, -1.0, "hourly", float("nan"), True):
        with pytest.raises(DataError, match="bucket must be 'exact' or a number of hours > 0"):
            make_sets(records, np.arange(4), scaler, bucket=bucket)
    with pytest.raises(DataError, match="holds series, not records"):
        load_records("etth1")
    with pytest.raises(DataError, match="sets applies to physionet2012 only"):
        load_records("records-csv", data_path=folder, sets=("a",))
    with pytest.raises(DataError, match="dataset 'records-csv' needs a file: pass data_path"):
        load_records("records-csv")


# --- the real archive ------------------------------------------------------------------


@NEEDS_ARCHIVE
def test_the_real_archive(parses):
    records = load_records("physionet2012", data_dir=PHYSIONET)
    report = records.report
    assert (report.stays_read, report.stays_kept, len(records)) == (12_000, 11_988, 11_988)
    assert report.no_series[:3] == ["140501", "140936", "141264"]
    assert report.empty_parameter == {"set-c": 2_403}
    assert report.missing["Height"] == 5_726 and report.statics_set_aside["Weight"] > 370_000
    assert report.dropped["zero"]["SysABP"] == 1_891 and report.changed == {"pH x100": {"pH": 3}}
    assert int(records.labels.sum()) == 1_707
    assert records.labels.mean() == pytest.approx(0.1424, abs=5e-4)
    assert len(records.variable_names) == 36 and len(records.values) == 4_831_046
    assert report.observations + report.statics + set_aside(report) == report.lines_read
    train, val, test = records.split(0)
    assert (len(train), len(val), len(test)) == (9_590, 1_199, 1_199)
    assert abs(records.labels[test].mean() - records.labels.mean()) < 2e-3
    load_records("physionet2012", data_dir=PHYSIONET)
    assert len(parses) == 1  # the second load came from the cache
