"""Classification benchmark: TimeMAE on UCI HAR, three UCR sets and UEA BasicMotions.

Per dataset and seed, in one run and on the same splits (HAR's validation by subject,
stratified elsewhere; the test split read once, at the end):

- ``timetok-finetune``: masked pretraining on the training samples (labels unread), then
  finetuning of the whole encoder with a classification head;
- ``timetok-linear-probe``: the same pretrained encoder frozen, a linear head trained;
- ``scratch``: the finetuning run from new weights (what pretraining adds, measured);
- ``minirocket``: aeon's MiniRocket classifier, fitted on the training and validation
  samples (it selects nothing on validation, so it may learn from them);
- ``timetok-native`` (on request): pretraining and finetuning with the Transformer
  encoder, whatever the set's size.

Every set runs the library's recipes (``timetok.mae.recipe``) with the same two files,
``configs/mae/classify/pretrain.yaml`` and ``finetune.yaml``: what they leave out (the
encoder, the batch size, the steps) follows the set's size, so a user's own UCR/UEA folder
(``--data-path``) runs exactly as the five sets do. Each record's ``command`` is the user's
command for its figure.

With ``--labels 1,5,10,100`` the sets named by ``--few-label-sets`` (HAR by default) also
run with labels for that share of the training and validation samples (stratified,
seeded by the seed); pretraining still reads every training sample, without labels, and
MiniRocket fits on the same labelled samples.

Reports test accuracy and macro-F1 per seed and their mean and standard deviation, with
the published HAR figures (both of which selected their checkpoints on the test split),
the wall time of each run and the CPU time of the whole run; writes a bar chart and HAR's
confusion matrix.

    python benchmarks/classify.py --data-root ../shared/data --seeds 1,2,3
    python benchmarks/classify.py --data-path ~/data/ucr/GunPoint --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONFIGS = Path(__file__).parents[1] / "configs" / "mae" / "classify"
# Where each dataset's official files lie under --data-root.
DATA_FOLDERS = {"har": "uci_har", "ecg200": "ucr", "syntheticcontrol": "ucr", "cbf": "ucr",
                "basicmotions": "uea"}
DATASETS = ("har", "ecg200", "syntheticcontrol", "cbf", "basicmotions")
# method -> (encoder of its pretraining, its finetuning settings beside the config file)
VARIANTS = {
    "timetok-finetune": ("auto", {}),
    "timetok-linear-probe": ("auto", {"freeze_policy": "head-only"}),
    "scratch": ("auto", {"scratch": True}),
    "timetok-native": ("native", {}),
}
METHODS = ("timetok-finetune", "timetok-linear-probe", "scratch", "minirocket")
PUBLISHED = [  # HAR test figures: (method, {metric: value}, reference)
    ("TimeDART (finetuned)", {"accuracy": 0.925, "macro_f1": 0.929},
     "TimeDART; checkpoints selected on test"),
    ("TimeMAE (re-run, finetuned)", {"accuracy": 0.920, "macro_f1": 0.925},
     "TimeMAE re-run; checkpoints selected on test"),
    ("CALANet (supervised, raw signals)", {"weighted_f1": 0.961}, "CALANet, NeurIPS 2024"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(Path(__file__).parents[2] / "shared/data"),
                        help="folder holding uci_har, ucr and uea")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--data-path", action="append", default=[],
                        help="a UCR (.tsv) or UEA (.ts) folder, or an .npz, to run instead of "
                             "--datasets (repeat for several)")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--seeds-for", action="append", default=[], metavar="NAME=SEEDS",
                        help="other seeds for one dataset, e.g. har=1 (repeat for several)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--labels", default="100",
                        help="label shares in percent for --few-label-sets, e.g. 1,5,10,100")
    parser.add_argument("--few-label-sets", default="har")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiply every run's optimiser steps (e.g. 0.01 for a smoke run)")
    parser.add_argument("--name", default="classify")
    parser.add_argument("--runs", default="runs/bench-classify")
    parser.add_argument("--results", default=str(RESULTS),
                        help="folder of the results files (a smoke run writes elsewhere)")
    args = parser.parse_args()

    from rich.console import Console

    from timetok.core.console import quiet
    from timetok.core.report import machine, record

    quiet()
    console = Console()
    command = "python benchmarks/classify.py " + shlex.join(sys.argv[1:])
    where, started = machine(), time.perf_counter()
    records, per_seed, timings = [], [], {}
    methods = args.methods.split(",")
    out = Results(Path(args.results), args.name, command, where, started)
    sources = ([Source.user(path) for path in args.data_path] if args.data_path else
               [Source.registered(name, args.data_root) for name in args.datasets.split(",")])
    for source in sources:
        shares = ([int(p) for p in args.labels.split(",")]
                  if source.label in args.few_label_sets.split(",") else [100])
        seeds = dict(item.split("=", 1) for item in args.seeds_for).get(source.label,
                                                                           args.seeds)
        for seed in [int(s) for s in seeds.split(",")]:
            bench = Bench(source, seed, args.steps_scale, Path(args.runs), timings)
            for share in shares:
                setting = f"seed={seed}" if share == 100 else f"labels={share}%,seed={seed}"
                results = run_seed(bench, methods, share, console, out)
                for method, metrics in results.items():
                    ran = bench.commands.get(method, command)
                    for metric, value in metrics.items():
                        records.append(record("classify", source.label, setting, method,
                                              metric, value, "measured", ran, where))
                    per_seed.append({"dataset": source.label, "labels": f"{share}%",
                                     "seed": seed, "method": method, **metrics})
                out.write(records, per_seed, timings)
    out.write(records, per_seed, timings, final=True)
    return 0


class Source:
    """A dataset the benchmark runs: its registered name, where its files are, its label."""

    def __init__(self, dataset: str, label: str, location: dict):
        self.dataset, self.label, self.location = dataset, label, location

    @classmethod
    def registered(cls, name: str, data_root: str) -> Source:
        return cls(name, name, {"data_dir": str(Path(data_root) / DATA_FOLDERS[name])})

    @classmethod
    def user(cls, path: str) -> Source:
        """A UCR/UEA folder or an .npz: its kind from the files it holds."""
        folder = Path(path)
        if folder.suffix == ".npz":
            return cls("npz", folder.stem.lower(), {"data_path": str(folder)})
        if any(folder.glob("*_TRAIN.ts")):
            kind = "uea"
        elif any(folder.glob("*_TRAIN.tsv")):
            kind = "ucr"
        else:
            sys.exit(f"error: {folder} holds no <Name>_TRAIN.tsv (UCR) or <Name>_TRAIN.ts "
                     "(UEA) file; pass a dataset folder of either archive, or an .npz")
        return cls(kind, folder.name.lower(), {"data_path": str(folder)})


class Bench:
    """One dataset and seed: the configs with the benchmark's per-run changes, and the user
    command each method's figures come from."""

    def __init__(self, source: Source, seed: int, steps_scale: float, runs: Path,
                 timings: dict):
        self.source, self.seed, self.steps_scale = source, seed, steps_scale
        self.run = runs / source.label / f"seed{seed}"
        self.timings = timings
        self.commands: dict[str, str] = {}
        self.pretrained: dict[str, tuple[Path, str]] = {}

    def changes(self, n_train: int) -> dict:
        """What every run changes in its config file: dataset, data, seed, quiet, and
        (smoke runs) a scaled budget."""
        from timetok.mae.recipe import batch_size_for, steps_for

        changes = {"dataset": self.source.dataset, **self.source.location, "seed": self.seed,
                   "progress": False}
        if self.steps_scale != 1:
            steps = steps_for(n_train, batch_size_for(n_train))
            changes["max_steps"] = max(1, round(steps * self.steps_scale))
        return changes

    def command(self, stage: str, settings: dict) -> str:
        """The user command that runs ``stage`` as this benchmark did (save paths aside)."""
        flags = [f"--dataset {self.source.dataset}"]
        flags += [f"--{k.replace('_', '-')} {os.path.relpath(v)}"
                  for k, v in self.source.location.items()]
        flags.append(f"--seed {self.seed}")
        for key, value in settings.items():
            flag = "--" + {"freeze_policy": "freeze"}.get(key, key).replace("_", "-")
            flags.append(flag if value is True else f"{flag} {value}")
        rel = (CONFIGS / f"{stage}.yaml").relative_to(Path(__file__).parents[1])
        return f"timetok mae {stage} --config {rel} {' '.join(flags)}"

    def pretrained_folder(self, encoder: str, n_train: int) -> tuple[Path, str]:
        """Masked pretraining with ``encoder`` (once per dataset and seed)."""
        from timetok.mae.recipe import PretrainConfig, pretrain

        if encoder not in self.pretrained:
            folder = self.run / f"pretrain-{encoder}"
            extra = {} if encoder == "auto" else {"encoder": encoder}
            user = {"save_path": f"runs/mae-{self.source.label}-{encoder}"}
            config = PretrainConfig.from_yaml(CONFIGS / "pretrain.yaml", save_path=str(folder),
                                              overwrite=True, **extra,
                                              **self.changes(n_train))
            summary = pretrain(config)
            self.timings[(self.source.label, f"pretrain-{encoder}")] = summary["wall_s"]
            self.pretrained[encoder] = folder, self.command("pretrain", extra | user)
        return self.pretrained[encoder]


def run_seed(bench: Bench, methods: list[str], share: int, console, out) -> dict[str, dict]:
    """Every method on one dataset, seed and label share -> {method: {accuracy, macro_f1}}."""
    from timetok.mae.evaluate import baseline_report
    from timetok.mae.recipe import EvaluateConfig, FinetuneConfig, evaluate, finetune

    source, seed = bench.source, bench.seed
    fraction = share / 100
    every = FinetuneConfig(dataset=source.dataset, **source.location).load()
    labelled = every.with_labels(fraction, seed)  # as the finetuning runs read it
    n_train = len(labelled.splits["train"])
    n_all = len(every.splits["train"])  # pretraining reads every training sample
    results: dict[str, dict] = {}
    for method in [m for m in VARIANTS if m in methods]:
        encoder, settings = VARIANTS[method]
        if share != 100:
            settings = settings | {"label_fraction": fraction}
        start, pretrain_command = bench.pretrained_folder(encoder, n_all)
        folder = bench.run / f"{method}-labels{share}"
        config = FinetuneConfig.from_yaml(CONFIGS / "finetune.yaml", model=str(start),
                                          save_path=str(folder), overwrite=True, **settings,
                                          **bench.changes(n_train))
        summary = finetune(config)
        bench.timings[(source.label, f"{method} labels={share}%")] = summary["wall_s"]
        report = evaluate(EvaluateConfig(model=str(folder), dataset=source.dataset,
                                         **source.location, baseline="none", device="cpu"))
        results[method] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
        user = {"model": f"runs/mae-{source.label}-{encoder}"}
        bench.commands[method] = (f"{pretrain_command} && "
                                  f"{bench.command('finetune', settings | user)}")
    if "minirocket" in methods:
        report = baseline_report(labelled, "test", "minirocket", seed)
        bench.timings[(source.label, f"minirocket labels={share}%")] = report["fit_s"]
        results["minirocket"] = {"accuracy": report["accuracy"],
                                 "macro_f1": report["macro_f1"]}
    for method, metrics in results.items():
        console.print(f"{source.label} labels {share}% seed {seed} {method}: accuracy "
                      f"{metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    return results


class Results:
    """The results files: records, Markdown and the charts, rewritten after each seed."""

    def __init__(self, folder: Path, name: str, command: str, where: str, started: float):
        self.folder, self.name, self.command = folder, name, command
        self.where, self.started = where, started

    def write(self, records: list, per_seed: list, timings: dict, final: bool = False) -> None:
        """Tables (mean ± sd over seeds, per seed), timings and the chart."""
        from timetok.core.report import markdown_table, record, write_results
        from timetok.core.utils import atomic_write_text

        name, command, where = self.name, self.command, self.where
        summary = summarise(per_seed)
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s = cpu.ru_utime + cpu.ru_stime
        wall_s = time.perf_counter() - self.started
        har = any(row["dataset"] == "har" for row in per_seed)
        published = [(m, values, ref) for m, values, ref in PUBLISHED if har]
        extra = [record("classify", "har", "published", method, metric, value, "published",
                        ref) for method, values, ref in published
                 for metric, value in values.items()]
        extra += [record("classify", d, "all", m, "wall_s", v, "measured", command, where)
                  for (d, m), v in timings.items()]
        extra += [record("classify", "all", "all", "timetok", metric, value, "measured",
                         command, where)
                  for metric, value in (("cpu_s", cpu_s), ("wall_s", wall_s))]
        self.folder.mkdir(parents=True, exist_ok=True)
        write_results(self.folder / f"{name}.json", records + extra)
        published = [{"dataset": "har", "method": m, **values, "source": "published"}
                     for m, values, _ in published]
        column = "wall seconds (minirocket: fit and predict)"
        timing_rows = [{"dataset": d, "run": m, column: v} for (d, m), v in timings.items()]
        text = (f"# Classification benchmark{'' if final else ' (partial)'}\n\nMachine: "
                f"{where}. Test accuracy and macro-F1, mean ± sd over seeds; selection on "
                f"validation only. Whole run: {wall_s / 60:.1f} min wall, {cpu_s / 60:.1f} min "
                "CPU. Every dataset ran `configs/mae/classify/pretrain.yaml`, then "
                "`configs/mae/classify/finetune.yaml`, with the settings they leave out "
                "chosen from the set's size; each record's `command` in "
                f"`{name}.json` is the user's command for its figure.\n\n"
                f"![accuracy]({name}_accuracy.png)"
                + (f" ![few labels]({name}_labels.png)" if curves(summary) else "") + "\n\n"
                + markdown_table(summary + published, ["dataset", "labels", "method", "accuracy",
                                                       "accuracy sd", "macro_f1",
                                                       "macro_f1 sd", "weighted_f1", "seeds",
                                                       "source"])
                + "\n\nMean accuracy over the datasets at full labels (each dataset's mean "
                "over seeds):\n\n" + markdown_table(overall(summary), ["method", "accuracy",
                                                                      "datasets"])
                + "\n\nPer seed:\n\n"
                + markdown_table(per_seed, ["dataset", "labels", "seed", "method",
                                            "accuracy", "macro_f1"])
                + "\n\nTimings:\n\n" + markdown_table(timing_rows, list(timing_rows[0]) if
                                                       timing_rows else ["dataset"])
                + f"\n\nCommand: `{command}`\n")
        atomic_write_text(self.folder / f"{name}.md", text)
        plot_accuracy(self.folder / f"{name}_accuracy.png", summary)
        if rows := curves(summary):
            from timetok.core.plots import plot_label_curve

            label = rows[0]["dataset"]
            plot_label_curve(self.folder / f"{name}_labels.png", rows, "accuracy",
                             f"{label}: test accuracy by labelled share, mean ± sd over seeds")


def summarise(per_seed: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in per_seed:
        groups.setdefault((row["dataset"], row["labels"], row["method"]), []).append(row)
    rows = []
    for (dataset, labels, method), runs in groups.items():
        row = {"dataset": dataset, "labels": labels, "method": method, "seeds": len(runs),
               "source": "measured"}
        for metric in ("accuracy", "macro_f1"):
            values = [r[metric] for r in runs]
            row[metric] = statistics.fmean(values)
            row[f"{metric} sd"] = statistics.stdev(values) if len(values) > 1 else None
        rows.append(row)
    return rows


def overall(summary: list[dict]) -> list[dict]:
    """Each method's mean accuracy over the datasets it ran at full labels."""
    by_method: dict[str, list[float]] = {}
    for row in summary:
        if row["labels"] == "100%":
            by_method.setdefault(row["method"], []).append(row["accuracy"])
    return [{"method": m, "accuracy": statistics.fmean(v), "datasets": len(v)}
            for m, v in by_method.items()]


def curves(summary: list[dict]) -> list[dict]:
    """The rows of the first dataset that ran at several label shares."""
    shares: dict[str, set] = {}
    for row in summary:
        shares.setdefault(row["dataset"], set()).add(row["labels"])
    several = [d for d, s in shares.items() if len(s) > 1]
    return [row for row in summary if several and row["dataset"] == several[0]]


def plot_accuracy(path: Path, summary: list[dict]) -> None:
    from timetok.core.plots import plot_grouped_bars

    full = [row for row in summary if row["labels"] == "100%"]
    if not full:
        return
    plot_grouped_bars(path, full, "accuracy", "test accuracy at full labels, mean ± sd over "
                      "seeds")


if __name__ == "__main__":
    sys.exit(main())
