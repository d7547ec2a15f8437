from timetok.core.plots import plot_metric_by_horizon
from timetok.core.report import record


def test_metric_by_horizon_writes_a_png(tmp_path):
    records = [record("forecast", dataset, f"H={h}", method, "mse", value, source, "cmd")
               for dataset in ("ettm1", "etth1")
               for method, source, value in (("timetok-linear", "measured", 0.3),
                                             ("repeat-last", "measured", 1.2),
                                             ("PatchTST/64", "published", 0.29))
               for h in (96, 192)]
    records.append(record("forecast", "ettm1", "H=96", "timetok", "kv_speedup_h720", 9.0,
                          "measured", "cmd"))
    path = tmp_path / "out" / "mse.png"
    plot_metric_by_horizon(path, records, leave_out=("repeat-last",))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["mse.png"]  # no temporary left
