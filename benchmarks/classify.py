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
# dataset -> (data dir under --data-root, epochs of pretraining and of finetuning)
DATASETS = {
    "har": ("uci_har", 30, 30),
    "ecg200": ("ucr", 100, 100),
    "syntheticcontrol": ("ucr", 100, 100),
    "cbf": ("ucr", 100, 100),
    "basicmotions": ("uea", 100, 100),
}
METHODS = ("timetok-finetune", "timetok-linear-probe", "timetok-bert", "scratch",
           "minirocket")
PUBLISHED = [  # HAR test figures: (method, {metric: value}, reference)
    ("TimeDART (finetuned)", {"accuracy": 0.925, "macro_f1": 0.929},
     "TimeDART; checkpoints selected on test"),
    ("TimeMAE (re-run, finetuned)", {"accuracy": 0.920, "macro_f1": 0.925},
     "TimeMAE re-run; checkpoints selected on test"),
    ("CALANet (supervised, raw signals)", {"weighted_f1": 0.961}, "CALANet, NeurIPS 2024"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(Path(__file__).parents[2] / "shared/data"))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply every epoch count (e.g. 0.05 for a smoke run)")
    parser.add_argument("--name", default="classify")
    parser.add_argument("--runs", default="runs/bench-classify")
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
    for dataset in args.datasets.split(","):
        folder, pre_epochs, ft_epochs = DATASETS[dataset]
        epochs = (max(1, round(pre_epochs * args.epochs_scale)),
                  max(1, round(ft_epochs * args.epochs_scale)))
        for seed in [int(s) for s in args.seeds.split(",")]:
            run = Path(args.runs) / dataset / f"seed{seed}"
            results = run_seed(dataset, Path(args.data_root) / folder, seed, epochs, methods,
                               run, console, timings, args.name)
            for method, metrics in results.items():
                for metric, value in metrics.items():
                    records.append(record("classify", dataset, f"seed={seed}", method, metric,
                                          value, "measured", command, where))
                per_seed.append({"dataset": dataset, "seed": seed, "method": method,
                                 **metrics})
            write(args.name, records, per_seed, timings, where, command, started)
    write(args.name, records, per_seed, timings, where, command, started, final=True)
    return 0


def options(epochs: int, seed: int):
    from timetok.core.train.runner import RunOptions

    return RunOptions(n_epochs=epochs, seed=seed, progress=False, accelerator="cpu",
                      devices="1", checkpoint_every=10_000)


def run_seed(dataset: str, data_dir: Path, seed: int, epochs: tuple[int, int],
             methods: list[str], run: Path, console, timings: dict, name: str
             ) -> dict[str, dict]:
    """Every method on one dataset and seed -> {method: {accuracy, macro_f1}}."""
    import lightning as L

    from timetok.core.train.runner import train_and_export
    from timetok.mae.data import LabelledDataModule
    from timetok.mae.evaluate import classification_report, predict_split
    from timetok.mae.recipe import finetune_module, pretrain_module

    dm = LabelledDataModule(dataset, batch_size=128, data_dir=str(data_dir), seed=0)
    data = dm.load()
    pre_epochs, ft_epochs = epochs
    results: dict[str, dict] = {}

    def score(module, method):
        probs, labels = predict_split(module.model, data.dataset("test"))
        report = classification_report(probs, labels, data.classes)
        results[method] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
        console.print(f"{dataset} seed {seed} {method}: accuracy {report['accuracy']:.4f}, "
                      f"macro-F1 {report['macro_f1']:.4f}")
        return report

    def pretrained(encoder: str) -> Path:
        out = run / f"pretrain-{encoder}"
        L.seed_everything(seed, verbose=False)
        module = pretrain_module(data, 1e-3, 0.01, 100, encoder=encoder)
        summary = train_and_export(module, dm, out, options(pre_epochs, seed))
        timings[(dataset, f"pretrain-{encoder}")] = summary["wall_s"] / max(summary["epochs"], 1)
        return out

    def finetune(method: str, start: Path, lr: float = 1e-3, **kwargs):
        L.seed_everything(seed, verbose=False)
        module = finetune_module(start, data, lr, 0.01, 100, **kwargs)
        summary = train_and_export(module, dm, run / method, options(ft_epochs, seed))
        timings[(dataset, method)] = summary["wall_s"] / max(summary["epochs"], 1)
        return score(module, method)

    native = None
    if {"timetok-finetune", "timetok-linear-probe", "scratch"} & set(methods):
        native = pretrained("native")
    if "timetok-finetune" in methods:
        report = finetune("timetok-finetune", native)
        if dataset == "har" and seed == 1:
            from timetok.core.plots import plot_confusion

            plot_confusion(RESULTS / f"{name}_har_confusion.png", report["confusion"],
                           data.classes)
    if "timetok-linear-probe" in methods:
        finetune("timetok-linear-probe", native, lr=1e-2, freeze_policy="linear-probe")
    if "scratch" in methods:
        finetune("scratch", native, scratch=True)
    if "timetok-bert" in methods:
        finetune("timetok-bert", pretrained("bert"))
    if "minirocket" in methods:
        results["minirocket"] = minirocket(data, seed, timings)
        console.print(f"{dataset} seed {seed} minirocket: accuracy "
                      f"{results['minirocket']['accuracy']:.4f}, macro-F1 "
                      f"{results['minirocket']['macro_f1']:.4f}")
    return results


def minirocket(data, seed: int, timings: dict) -> dict:
    """aeon's MiniRocket on the training + validation samples, scored on test."""
    import numpy as np
    import torch
    from aeon.classification.convolution_based import MiniRocketClassifier

    from timetok.mae.evaluate import classification_report

    fit = [data.splits[s] for s in ("train", "val")]
    x = np.concatenate([s.x for s in fit]).transpose(0, 2, 1)  # aeon: [N, C, T]
    y = np.concatenate([s.y for s in fit])
    begin = time.perf_counter()
    model = MiniRocketClassifier(random_state=seed).fit(x, y)
    timings[(data.name, "minirocket")] = time.perf_counter() - begin
    test = data.splits["test"]
    predicted = model.predict(test.x.transpose(0, 2, 1)).astype(np.int64)
    probs = torch.nn.functional.one_hot(torch.from_numpy(predicted), data.n_classes).float()
    report = classification_report(probs, torch.from_numpy(test.y), data.classes)
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def write(name: str, records: list, per_seed: list, timings: dict, where: str, command: str,
          started: float, final: bool = False) -> None:
    """Tables (mean ± sd over seeds, per seed), timings and the chart, after each seed."""
    from timetok.core.report import markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text

    summary = summarise(per_seed)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = cpu.ru_utime + cpu.ru_stime
    wall_s = time.perf_counter() - started
    har = any(row["dataset"] == "har" for row in per_seed)
    published = [(m, values, ref) for m, values, ref in PUBLISHED if har]
    extra = [record("classify", "har", "published", method, metric, value, "published", ref)
             for method, values, ref in published for metric, value in values.items()]
    extra += [record("classify", d, "all", m, "wall_s_per_epoch", v, "measured", command,
                     where) for (d, m), v in timings.items()]
    extra += [record("classify", "all", "all", "timetok", metric, value, "measured", command,
                     where) for metric, value in (("cpu_s", cpu_s), ("wall_s", wall_s))]
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS / f"{name}.json", records + extra)
    published = [{"dataset": "har", "method": m, **values, "source": "published"}
                 for m, values, _ in published]
    timing_rows = [{"dataset": d, "run": m, "seconds per epoch (fit for minirocket)": v}
                   for (d, m), v in timings.items()]
    text = (f"# Classification benchmark{'' if final else ' (partial)'}\n\nMachine: {where}. "
            f"Test accuracy and macro-F1, mean ± sd over seeds; selection on validation "
            f"only. Whole run: {wall_s / 60:.1f} min wall, {cpu_s / 60:.1f} min CPU.\n\n"
            f"![accuracy]({name}_accuracy.png)"
            + (f" ![HAR confusion]({name}_har_confusion.png)" if har else "") + "\n\n"
            + markdown_table(summary + published, ["dataset", "method", "accuracy",
                                                   "accuracy sd", "macro_f1", "macro_f1 sd",
                                                   "weighted_f1", "seeds", "source"])
            + "\n\nPer seed:\n\n"
            + markdown_table(per_seed, ["dataset", "seed", "method", "accuracy", "macro_f1"])
            + "\n\nTimings:\n\n" + markdown_table(timing_rows, list(timing_rows[0]) if
                                                   timing_rows else ["dataset"])
            + f"\n\nCommand: `{command}`\n")
    atomic_write_text(RESULTS / f"{name}.md", text)
    plot_accuracy(RESULTS / f"{name}_accuracy.png", summary)


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
