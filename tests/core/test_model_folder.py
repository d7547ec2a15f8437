import pytest
import torch

from timetok.core.model_folder import compare_state_dicts


def test_the_load_report_names_every_key_and_the_share_that_loaded():
    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1), "d": torch.zeros(4)}
    loaded = {"a": torch.ones(2), "b": torch.ones(5), "extra": torch.ones(1), "d": torch.ones(4)}
    report = compare_state_dicts(loaded, expected)
    assert (report.matched, report.missing, report.unexpected) == (["a", "d"], ["c"], ["extra"])
    assert report.fraction == 0.5 and not report.clean
    assert report.lines() == ["matched     a", "matched     d", "missing     c",
                              "unexpected  extra", "mis-shaped  b: file [5] vs model [3]"]
    assert compare_state_dicts({}, {}).fraction == 0.0


def test_one_data_file_holds_every_section_and_rewrites_one_at_a_time(tmp_path):
    from timetok.core.model_folder import DATA_NAME, read_data_section, write_data_section

    write_data_section(tmp_path, "scaler", {"mean": [1.0], "std": [2.0]})
    write_data_section(tmp_path, "labels", ["a", "b"])
    write_data_section(tmp_path, "labels", ["x", "y"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATA_NAME]
    assert read_data_section(tmp_path, "scaler") == {"mean": [1.0], "std": [2.0]}
    assert read_data_section(tmp_path, "labels") == ["x", "y"]


def test_a_missing_section_names_the_file_unless_it_is_optional(tmp_path):
    from timetok.core.errors import CheckpointError
    from timetok.core.model_folder import read_data_section

    assert read_data_section(tmp_path, "calibration", required=False) is None
    with pytest.raises(CheckpointError, match=r"no scaler \(section 'scaler' of data.json\)"):
        read_data_section(tmp_path, "scaler")


def test_a_folder_exported_before_the_data_file_still_loads(tmp_path):
    from timetok.core.model_folder import read_data_section

    (tmp_path / "scaler.json").write_text('{"mean": [0.0], "std": [1.0]}')
    assert read_data_section(tmp_path, "scaler") == {"mean": [0.0], "std": [1.0]}
