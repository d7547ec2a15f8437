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
