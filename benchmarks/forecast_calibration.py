"""Calibration variants on the models of a forecast benchmark run.

For each dataset and horizon of a finished ``benchmarks/forecast.py`` run (its ``--runs``
folder: ``<dataset>/decoder/H<h>``), the exported point forecast's validation residuals are
calibrated twice, as :func:`timetok.forecast.calibration.calibrate_model` does: ``marginal``
(one set of residual quantiles for every window) and ``scaled`` (in units of each context's
spread over its last steps). ``timetok-calibrated`` is the one with the lower forward CRPS
on validation (fitted on the earlier half of the windows, scored on the later half), which
finetuning now writes. Each is scored on the test windows by CRPS, WQL and the
80 % and 50 % interval coverage, beside the in-run ``residual-quantiles`` baseline (the
better closed-form linear map plus its own validation residual quantiles). The models and
their point forecasts are the run's own; only the bands differ. Results of datasets not
named in ``--datasets`` are kept from the last run, so a benchmark run's datasets can be
scored as each finishes.

    python benchmarks/forecast_calibration.py --runs runs/bench-forecast
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
METRICS = ("crps", "wql", "coverage80", "coverage50")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/bench-forecast",
                        help="the --runs folder of a finished benchmarks/forecast.py run")
    parser.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared/data/ett"))
    parser.add_argument("--datasets", default="etth1,etth2,ettm1,ettm2")
    parser.add_argument("--horizons", default="96")
    parser.add_argument("--eval-stride", type=int, default=4)
    parser.add_argument("--name", default="forecast_calibration")
    args = parser.parse_args()

    from rich.console import Console

    from timetok import Forecaster
    from timetok.core.console import quiet
    from timetok.core.data.series import load_splits
    from timetok.core.report import machine, markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text
    from timetok.forecast.calibration import calibration_variants
    from timetok.forecast.evaluate import evaluate_probabilistic
    from timetok.forecast.model import TokenForecaster

    quiet()
    console = Console()
    command = "python benchmarks/forecast_calibration.py " + shlex.join(sys.argv[1:])
    where = machine()
    datasets = args.datasets.split(",")
    path = RESULTS / f"{args.name}.json"
    records = [r for r in (json.loads(path.read_text()) if path.is_file() else [])
               if r["dataset"] not in datasets]
    for dataset in datasets:
        for horizon in (int(h) for h in args.horizons.split(",")):
            folder = Path(args.runs) / dataset / "decoder" / f"H{horizon}"
            if not folder.is_dir():
                console.print(f"[yellow]{folder} is missing: skipped[/]")
                continue
            model = TokenForecaster.from_pretrained(folder).eval()
            data = load_splits(dataset, model.config.context_points, data_dir=args.data_dir)
            windows = data.windows("val", model.config.context_points, horizon)
            variants = calibration_variants(model, windows, dataset=dataset)
            chosen = min(variants, key=lambda name: variants[name][1])
            console.print(f"{dataset} H={horizon}: forward validation CRPS " + ", ".join(
                f"{name} {crps:.4f}" for name, (_, crps) in variants.items()))
            for name, (calibration, val_crps) in variants.items():
                report = evaluate_probabilistic(Forecaster.from_pretrained(folder), data,
                                                stride=args.eval_stride, samples=0,
                                                calibration=calibration)
                ours = report["methods"]["timetok-calibrated"]
                scored = [(f"timetok-calibrated-{name}", ours, val_crps)]
                if name == chosen:
                    scored.append(("timetok-calibrated", ours, val_crps))
                if name == "marginal":  # the baseline does not depend on our calibration
                    scored.append(("residual-quantiles", report["methods"]["residual-quantiles"],
                                   None))
                for method, metrics, crps in scored:
                    values = {**{m: metrics[m] for m in METRICS}, "windows": metrics["windows"]}
                    if crps is not None:
                        values["val_crps"] = crps
                    for metric, value in values.items():
                        records.append(record("forecast", dataset, f"H={horizon}", method,
                                              metric, value, "measured", command, where))
    rows: dict[tuple, dict] = {}
    for r in records:
        row = rows.setdefault((r["dataset"], int(r["setting"][2:]), r["method"]), {
            "dataset": r["dataset"], "H": int(r["setting"][2:]), "method": r["method"],
            "machine": r["machine"]})
        row[r["metric"]] = r["value"]
    text = ("# Forecast calibration variants\n\nThe models of a `benchmarks/forecast.py` "
            "run; CRPS and coverage standardised, WQL on the original scale. "
            "`timetok-calibrated` is the variant with the lower forward CRPS on validation "
            "(`val_crps`: fitted on the earlier half of the validation windows, scored on the "
            "later half).\n\n"
            + markdown_table([rows[k] for k in sorted(rows)],
                             ["dataset", "H", "method", "val_crps", *METRICS, "windows",
                              "machine"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.md", text + "\n")
    write_results(path, records)
    console.print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
