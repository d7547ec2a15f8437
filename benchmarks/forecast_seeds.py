"""Seed spread of the forecast benchmark: test MSE/MAE over runs that differ only in --seed.

Reads the results that ``benchmarks/forecast.py`` wrote (``forecast*.json``; each run names
its seed and profile in its command, e.g. ``--seed 2 --name forecast_etth1_seed2``) and,
for each dataset measured with two or more seeds in one profile (CPU by default), reports
per horizon and method the mean and standard deviation of test MSE and MAE, and in how many
seeds a method beat the in-run DLinear-style baseline of its own run. Published figures are
listed alongside.

    python benchmarks/forecast_seeds.py [--profile gpu]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
NAME = "forecast_seeds"
TIE = 1e-4  # closer to the baseline than this is a tie (the linear head's fitted start)
METHODS = ("timetok-linear", "timetok-decoder", "timetok-blend", "dlinear", "rlinear",
           "seasonal-naive")


def flag(command: str, name: str, default: str) -> str:
    """The value of ``name`` in a benchmark's command line, or its default."""
    args = shlex.split(command)
    return args[args.index(name) + 1] if name in args else default


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args()
    stem = NAME if args.profile == "cpu" else f"{NAME}_{args.profile}"

    from timetok.core.report import markdown_table, record, write_results

    measured = defaultdict(dict)  # (dataset, setting, method, metric) -> {seed: value}
    published, machines = {}, set()
    for path in sorted(RESULTS.glob("forecast*.json")):
        if path.stem.startswith(NAME):
            continue
        for r in json.loads(path.read_text()):
            if not r["setting"].startswith("H=") or r["setting"] == "H=0":
                continue
            key = (r["dataset"], r["setting"], r["method"], r["metric"])
            if r["source"] == "published":
                published[key] = r["value"]
            elif (r["method"] in METHODS and r["metric"] in ("mse", "mae")
                  and flag(r["command"], "--profile", "cpu") == args.profile):
                measured[key][int(flag(r["command"], "--seed", "1"))] = r["value"]
                machines.add(r["machine"])

    seeds = defaultdict(set)
    for (dataset, *_), values in measured.items():
        seeds[dataset] |= set(values)
    datasets = sorted(d for d, s in seeds.items() if len(s) > 1)
    if not datasets:
        print(f"no dataset has {args.profile} runs with two or more seeds; run "
              "benchmarks/forecast.py with --seed 2 --name forecast_<dataset>_seed2 first",
              file=sys.stderr)
        return 2

    command = shlex.join(["python", "benchmarks/forecast_seeds.py", *sys.argv[1:]])
    machine = ", ".join(sorted(machines))
    rows, records = [], []
    for dataset in datasets:
        settings = sorted({k[1] for k in measured if k[0] == dataset}, key=lambda s: int(s[2:]))
        for setting in settings:
            baseline = measured[(dataset, setting, "dlinear", "mse")]
            for method in METHODS:
                row = {"dataset": dataset, "H": setting[2:], "method": method,
                       "source": "measured"}
                for metric in ("mse", "mae"):
                    values = measured.get((dataset, setting, method, metric))
                    if not values:
                        continue
                    mean, std = statistics.mean(values.values()), statistics.stdev(values.values())
                    row |= {metric: mean, f"{metric} std": std, "seeds": len(values)}
                    for name, value in ((f"{metric}_mean", mean), (f"{metric}_std", std)):
                        records.append(record("forecast", dataset, setting, method, name, value,
                                              "measured", command, machine))
                if "mse" not in row:
                    continue
                if method.startswith("timetok"):
                    mse = measured[(dataset, setting, method, "mse")]
                    wins = sum(mse[s] < baseline[s] - TIE for s in mse if s in baseline)
                    row["below dlinear"] = f"{wins}/{len(mse)}"
                rows.append(row)
            for (d, s, method, metric), value in published.items():
                if d == dataset and s == setting and metric == "mse":
                    rows.append({"dataset": dataset, "H": setting[2:], "method": method,
                                 "mse": value, "source": "published"})

    title = (f"# Forecast benchmark over seeds ({args.profile} profile; "
             f"{', '.join(datasets)})\n\nMachine: {machine}. "
             "Mean and standard deviation of standardised test MSE/MAE over runs of "
             "`benchmarks/forecast.py` that differ only in `--seed` (each its own tokenizer, "
             "pretraining and finetuning); `below dlinear`: the seeds in which the method beat "
             "its own run's DLinear-style baseline by more than 1e-4 MSE.\n\n")
    table = markdown_table(rows, ["dataset", "H", "method", "mse", "mse std", "mae", "mae std",
                                  "seeds", "below dlinear", "source"])
    (RESULTS / f"{stem}.md").write_text(title + table + "\n")
    write_results(RESULTS / f"{stem}.json", records)
    print(title + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
