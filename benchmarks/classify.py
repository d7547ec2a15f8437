"""Classification benchmark: TimeMAE on UCI HAR, three UCR sets and UEA BasicMotions.

Per dataset and seed, in one run and on the same splits (HAR's validation by subject,
stratified elsewhere; the test split read once, at the end):

- ``timetok-finetune``: masked pretraining (native encoder) on the training samples, then
  finetuning of the whole encoder with a classification head;
- ``timetok-linear-probe``: the same pretrained encoder frozen, a linear head trained
  (learning rate 1e-2: a head alone on the small UCR sets barely moves at 1e-3);
- ``timetok-bert``: pretraining and finetuning with the ``transformers.BertModel`` encoder;
- ``scratch``: the finetuning run from new weights (what pretraining adds, measured);
- ``minirocket``: aeon's MiniRocket classifier, fitted on the training and validation
  samples (it selects nothing on validation, so it may learn from them).

Each dataset runs the library's recipes (``timetok.mae.recipe``) with
``configs/mae/<dataset>/pretrain.yaml`` and ``configs/mae/<dataset>/finetune.yaml``; the
methods other than ``timetok-finetune`` change the settings ``VARIANTS`` names, and each
record's ``command`` is the user's command for its figure.

Every finetuning run keeps the checkpoint with the best validation accuracy. Reports test
accuracy and macro-F1 per seed and their mean and standard deviation, with the published
HAR figures (both of which selected their checkpoints on the test split), wall time per
HAR epoch and the CPU time of the whole run; writes a bar chart and HAR's confusion matrix.

    python benchmarks/classify.py --data-root ../shared/data --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# Each dataset runs configs/mae/<dataset>/pretrain.yaml, then <dataset>/finetune.yaml.
CONFIGS = Path(__file__).parents[1] / "configs" / "mae"
# Where each dataset's official files lie under --data-root (the configs name none, so
# they also run on the bundled ECG200 or a user's own copy).
DATA_FOLDERS = {"har": "uci_har", "ecg200": "ucr", "syntheticcontrol": "ucr", "cbf": "ucr",
                "basicmotions": "uea"}
DATASETS = ("har", "ecg200", "syntheticcontrol", "cbf", "basicmotions")
# method -> (encoder of its pretraining, its finetuning settings beside the config file)
VARIANTS = {
    "timetok-finetune": ("native", {}),
    "timetok-linear-probe": ("native", {"freeze_policy": "head-only", "lr": 1e-2}),
    "scratch": ("native", {"scratch": True}),
    "timetok-bert": ("bert", {}),
}
METHODS = (*VARIANTS, "minirocket")
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
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply every epoch count (e.g. 0.05 for a smoke run)")
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
    for dataset in args.datasets.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            run = Path(args.runs) / dataset / f"seed{seed}"
            bench = Bench(dataset, seed, args.data_root, args.epochs_scale, run, timings)
            results = run_seed(bench, methods, console, out)
            for method, metrics in results.items():
                ran = bench.commands.get(method, command)
                for metric, value in metrics.items():
                    records.append(record("classify", dataset, f"seed={seed}", method, metric,
                                          value, "measured", ran, where))
                per_seed.append({"dataset": dataset, "seed": seed, "method": method,
                                 **metrics})
            out.write(records, per_seed, timings)
    out.write(records, per_seed, timings, final=True)
    return 0


class Bench:
    """One dataset and seed: its configs (with the benchmark's per-run changes), and the
    user command each method's figures come from."""

    def __init__(self, dataset: str, seed: int, data_root: str, epochs_scale: float,
                 run: Path, timings: dict):
        self.dataset, self.seed, self.run, self.timings = dataset, seed, run, timings
        self.data_root, self.epochs_scale = data_root, epochs_scale
        self.commands: dict[str, str] = {}

    def path(self, stage: str) -> Path:
        return CONFIGS / self.dataset / f"{stage}.yaml"

    def overrides(self, stage: str) -> dict:
        """seed, data_dir, epochs, quiet: what each run changes in its config file."""
        from timetok.core.cli_options import read_yaml

        values = read_yaml(self.path(stage), "config file")
        data_dir = Path(self.data_root) / DATA_FOLDERS[self.dataset]
        changes = {"seed": self.seed, "data_dir": str(data_dir), "progress": False}
        if self.epochs_scale != 1:
            changes["n_epochs"] = max(1, round(values["n_epochs"] * self.epochs_scale))
        return changes

    def command(self, stage: str, settings: dict) -> str:
        """The user command that runs ``stage`` as this benchmark did (save paths aside)."""
        flags = [f"--seed {self.seed}"]
        for key, value in settings.items():
            flag = "--" + {"freeze_policy": "freeze"}.get(key, key).replace("_", "-")
            flags.append(flag if value is True else f"{flag} {value}")
        rel = self.path(stage).relative_to(Path(__file__).parents[1])
        return f"timetok mae {stage} --config {rel} {' '.join(flags)}"


def run_seed(bench: Bench, methods: list[str], console, out) -> dict[str, dict]:
    """Every method on one dataset and seed -> {method: {accuracy, macro_f1}}."""
    from timetok.core.data.labelled import load_labelled
    from timetok.mae.evaluate import baseline_report
    from timetok.mae.recipe import (
        EvaluateConfig,
        FinetuneConfig,
        PretrainConfig,
        evaluate,
        finetune,
        pretrain,
    )

    dataset, run, seed = bench.dataset, bench.run, bench.seed
    results: dict[str, dict] = {}
    pretrained: dict[str, tuple[Path, str, dict]] = {}

    def pretrained_folder(encoder: str) -> tuple[Path, str, dict]:
        if encoder not in pretrained:
            folder = run / f"pretrain-{encoder}"
            extra = {} if encoder == "native" else {"encoder": encoder}
            # a user's run of another encoder needs a folder of its own
            user = {} if encoder == "native" else {
                "save_path": f"runs/mae-{dataset}-pretrain-{encoder}"}
            config = PretrainConfig.from_yaml(bench.path("pretrain"), save_path=str(folder),
                                              overwrite=True, **extra,
                                              **bench.overrides("pretrain"))
            summary = pretrain(config)
            bench.timings[(dataset, f"pretrain-{encoder}")] = (
                summary["wall_s"] / max(summary["epochs"], 1))
            pretrained[encoder] = folder, bench.command("pretrain", extra | user), user
        return pretrained[encoder]

    for method in [m for m in VARIANTS if m in methods]:
        encoder, settings = VARIANTS[method]
        start, pretrain_command, user = pretrained_folder(encoder)
        folder = run / method
        config = FinetuneConfig.from_yaml(bench.path("finetune"), model=str(start),
                                          save_path=str(folder), overwrite=True, **settings,
                                          **bench.overrides("finetune"))
        summary = finetune(config)
        bench.timings[(dataset, method)] = summary["wall_s"] / max(summary["epochs"], 1)
        report = evaluate(EvaluateConfig(model=str(folder), dataset=dataset,
                                         data_dir=config.data_dir, baseline="none",
                                         device="cpu"))
        results[method] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
        user = {"model": user["save_path"],
                "save_path": f"runs/mae-{dataset}-finetune-{encoder}"} if user else {}
        bench.commands[method] = (f"{pretrain_command} && "
                                  f"{bench.command('finetune', settings | user)}")
        if method == "timetok-finetune" and dataset == "har" and seed == 1:
            out.confusion(report)
    if "minirocket" in methods:
        data_dir = bench.overrides("finetune")["data_dir"]
        report = baseline_report(load_labelled(dataset, data_dir=data_dir), "test",
                                 "minirocket", seed)
        bench.timings[(dataset, "minirocket")] = report["fit_s"]
        results["minirocket"] = {"accuracy": report["accuracy"],
                                 "macro_f1": report["macro_f1"]}
    for method, metrics in results.items():
        console.print(f"{dataset} seed {seed} {method}: accuracy {metrics['accuracy']:.4f}, "
                      f"macro-F1 {metrics['macro_f1']:.4f}")
    return results


class Results:
    """The results files: records, Markdown and the charts, rewritten after each seed."""

    def __init__(self, folder: Path, name: str, command: str, where: str, started: float):
        self.folder, self.name, self.command = folder, name, command
        self.where, self.started = where, started

    def confusion(self, report: dict) -> None:
        from timetok.core.plots import plot_confusion

        self.folder.mkdir(parents=True, exist_ok=True)
        plot_confusion(self.folder / f"{self.name}_har_confusion.png", report["confusion"],
                       list(report["per_class"]))

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
        extra += [record("classify", d, "all", m, "wall_s_per_epoch", v, "measured", command,
                         where) for (d, m), v in timings.items()]
        extra += [record("classify", "all", "all", "timetok", metric, value, "measured",
                         command, where)
                  for metric, value in (("cpu_s", cpu_s), ("wall_s", wall_s))]
        self.folder.mkdir(parents=True, exist_ok=True)
        write_results(self.folder / f"{name}.json", records + extra)
        published = [{"dataset": "har", "method": m, **values, "source": "published"}
                     for m, values, _ in published]
        column = "seconds per epoch (fit and predict for minirocket)"
        timing_rows = [{"dataset": d, "run": m, column: v} for (d, m), v in timings.items()]
        text = (f"# Classification benchmark{'' if final else ' (partial)'}\n\nMachine: "
                f"{where}. Test accuracy and macro-F1, mean ± sd over seeds; selection on "
                f"validation only. Whole run: {wall_s / 60:.1f} min wall, {cpu_s / 60:.1f} min "
                "CPU. Each dataset ran `configs/mae/DATASET/pretrain.yaml`, then "
                "`configs/mae/DATASET/finetune.yaml`; each record's `command` in "
                f"`{name}.json` is the user's command for its figure.\n\n"
                f"![accuracy]({name}_accuracy.png)"
                + (f" ![HAR confusion]({name}_har_confusion.png)" if har else "") + "\n\n"
                + markdown_table(summary + published, ["dataset", "method", "accuracy",
                                                       "accuracy sd", "macro_f1",
                                                       "macro_f1 sd", "weighted_f1", "seeds",
                                                       "source"])
                + "\n\nPer seed:\n\n"
                + markdown_table(per_seed, ["dataset", "seed", "method", "accuracy",
                                            "macro_f1"])
                + "\n\nTimings:\n\n" + markdown_table(timing_rows, list(timing_rows[0]) if
                                                       timing_rows else ["dataset"])
                + f"\n\nCommand: `{command}`\n")
        atomic_write_text(self.folder / f"{name}.md", text)
        plot_accuracy(self.folder / f"{name}_accuracy.png", summary)


def summarise(per_seed: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in per_seed:
        groups.setdefault((row["dataset"], row["method"]), []).append(row)
    rows = []
    for (dataset, method), runs in groups.items():
        row = {"dataset": dataset, "method": method, "seeds": len(runs), "source": "measured"}
        for metric in ("accuracy", "macro_f1"):
            values = [r[metric] for r in runs]
            row[metric] = statistics.fmean(values)
            row[f"{metric} sd"] = statistics.stdev(values) if len(values) > 1 else None
        rows.append(row)
    return rows


def plot_accuracy(path: Path, summary: list[dict]) -> None:
    from timetok.core.plots import plot_grouped_bars

    plot_grouped_bars(path, summary, "accuracy", "test accuracy, mean ± sd over seeds")


if __name__ == "__main__":
    sys.exit(main())
