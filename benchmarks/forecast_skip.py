"""The trained skip on the models of a forecast benchmark run.

Finetuning now lets a DLinear trained by its authors' recipe compete with the ridge
least-squares skip on the validation windows (``timetok forecast finetune --trained-skip``). The
decoder head's training never reads the skip (its loss is the head's own), so on a finished
``benchmarks/forecast.py`` run (its ``--runs`` folder: ``<dataset>/decoder/H<h>``) refitting
the skip and then the blend gives the model a rerun would export. For each dataset and
horizon this script does so and, where the trained map wins on validation, scores the new
blend on the test windows (and, at the horizons given, its calibrated quantiles); where the
ridge fit keeps its place the model is the run's own and its records stand. The linear
head's runs keep their ridge skip, which their training read.

Its records join the run's by ``benchmarks/forecast.py --merge``, later files winning:

    python benchmarks/forecast_skip.py --runs runs/bench-forecast
    python benchmarks/forecast.py --merge forecast,forecast_ettm1,forecast_skip --name forecast_cpu
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VAL_STRIDE = 16  # as benchmarks/forecast.py: finetuning's validation windows
PROBABILISTIC = ("crps", "wql", "coverage80", "coverage50")


def rescore(model, folder: Path, data, horizon: int, eval_stride: int, probabilistic: bool,
            add) -> dict:
    """The refitted model's test figures (``add(method, metric, value)`` records each) and,
    with ``probabilistic``, its calibrated quantiles' scores, from a copy of its folder
    calibrated anew; returns the table's cells."""
    from timetok import Forecaster
    from timetok.forecast.calibration import calibrate_folder
    from timetok.forecast.evaluate import evaluate_forecaster, evaluate_probabilistic

    report = evaluate_forecaster(model, data, horizon, stride=eval_stride)
    for method in ("timetok-blend", "timetok-decoder"):
        for metric, value in report["methods"][method].items():
            add(method, metric, value)
    row = {"test mse": report["methods"]["timetok-blend"]["mse"], "windows": report["windows"]}
    if probabilistic:
        out = folder.with_name(f"{folder.name}-trained-skip")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(folder, out, ignore=shutil.ignore_patterns("checkpoints"))
        model.save_pretrained(out)
        calibrate_folder(out, data)
        scores = evaluate_probabilistic(Forecaster.from_pretrained(out), data,
                                        stride=eval_stride, samples=0)
        for metric in PROBABILISTIC:
            add("timetok-calibrated", metric, scores["methods"]["timetok-calibrated"][metric])
            row[metric] = scores["methods"]["timetok-calibrated"][metric]
    return row


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", action="append",
                        help="the --runs folder of a finished benchmarks/forecast.py run "
                             "(repeat for several; the first holding a dataset is read) "
                             "[default: runs/bench-forecast]")
    parser.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared/data/ett"))
    parser.add_argument("--datasets", default="etth1,etth2,ettm1,ettm2")
    parser.add_argument("--horizons", default="96,192,336,720")
    parser.add_argument("--probabilistic-horizons", default="96",
                        help="horizons whose calibrated quantiles are scored again where the "
                             "skip changes")
    parser.add_argument("--eval-stride", type=int, default=4)
    parser.add_argument("--name", default="forecast_skip")
    return parser.parse_args()


def main() -> int:
    args = parse_args()

    from rich.console import Console

    from timetok.core.console import quiet
    from timetok.core.data.series import load_splits
    from timetok.core.report import machine, markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text
    from timetok.forecast.baselines import trained_linear_fit
    from timetok.forecast.model import TokenForecaster

    quiet()
    console = Console()
    command = "python benchmarks/forecast_skip.py " + shlex.join(sys.argv[1:])
    where = machine()
    runs = [Path(r) for r in args.runs or ["runs/bench-forecast"]]
    probabilistic_horizons = {int(h) for h in args.probabilistic_horizons.split(",") if h}
    records, rows = [], []

    def add(dataset, horizon, method, metric, value):
        records.append(record("forecast", dataset, f"H={horizon}", method, metric, value,
                              "measured", command, where))

    for dataset in args.datasets.split(","):
        for horizon in (int(h) for h in args.horizons.split(",")):
            folder = next((r / dataset / "decoder" / f"H{horizon}" for r in runs
                           if (r / dataset / "decoder" / f"H{horizon}").is_dir()), None)
            if folder is None:
                console.print(f"[yellow]{dataset} H={horizon}: no decoder run: skipped[/]")
                continue
            model = TokenForecaster.from_pretrained(folder).eval()
            context = model.config.context_points
            data = load_splits(dataset, context, data_dir=args.data_dir)
            train = data.windows("train", context, horizon)
            val = data.windows("val", context, horizon, VAL_STRIDE)
            trained = trained_linear_fit(train, val, dataset, horizon)
            ridge = model.init_linear_skip(train, val)
            kept = model.init_linear_skip(train, val, [trained])
            blend = model.fit_blend(val)
            row = {"dataset": dataset, "H": horizon, "ridge val": ridge.val_mse,
                   "trained val": trained.val_mse, "kept": model.config.skip_fit,
                   "blend val": blend["blend"], "decoder val": blend["decoder"]}
            add(dataset, horizon, "timetok-skip-ridge", "val_mse", ridge.val_mse)
            add(dataset, horizon, "timetok-skip-trained", "val_mse", trained.val_mse)
            console.print(f"{dataset} H={horizon}: skip val MSE ridge {ridge.val_mse:.4f}, "
                          f"trained {trained.val_mse:.4f}: kept {model.config.skip_fit}")
            if kept is trained:
                add(dataset, horizon, "timetok-blend", "val_mse", blend["blend"])
                row |= rescore(model, folder, data, horizon, args.eval_stride,
                               horizon in probabilistic_horizons,
                               lambda *a, d=dataset, h=horizon: add(d, h, *a))
            rows.append(row)
    text = ("# The trained skip on the CPU runs' models\n\nMachine: " + where + ". Per dataset "
            "and horizon, the validation MSE (every 16th window) of the ridge skip and of a "
            "DLinear trained by its recipe, the one kept, and the refitted blend's. Where the "
            "trained map is kept, the new blend's test MSE (every "
            f"{args.eval_stride}th window) and, at H in {sorted(probabilistic_horizons)}, its "
            "calibrated quantiles' scores; elsewhere the model is the run's own.\n\n"
            + markdown_table(rows, ["dataset", "H", "ridge val", "trained val", "kept",
                                    "decoder val", "blend val", "test mse", "windows",
                                    *PROBABILISTIC])
            + f"\n\nCommand: `{command}`\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.md", text)
    write_results(RESULTS / f"{args.name}.json", records)
    console.print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
