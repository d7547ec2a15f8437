"""PhysioNet 2012 in-hospital mortality: SeqSetVAE against a tree baseline, 5 splits.

The literature's protocol (Raindrop, Warpformer, ViTST, ISTS-PLM): the 11,988 stays with
data, five fixed stratified 80/10/10 splits, selection on validation AUROC, test AUROC and
AUPRC as mean ± sd over the splits. Per split, in one run:

- ``timetok-head-only`` / ``timetok-full``: SeqSetVAE pretrained without labels on the
  split's training stays, then finetuned with the backbone frozen (head and gate only) or
  entirely; the head adds a linear map of the stay's per-variable summaries (the
  finetuning default) to the deep state's logits;
- ``scratch``: the same architecture finetuned from new weights (what pretraining adds);
- ``gbt``: scikit-learn's ``HistGradientBoostingClassifier`` on per-variable summaries
  (last, mean, min, max, count, hours since the last observation) and the statics, early
  stopped on the split's validation stays, whose AUROC also picks its learning rate;
- ``logistic``: scikit-learn's ``LogisticRegression`` on the same summaries, standardised
  on the training stays (clipped to +-5, missing ones 0 with a missing flag), its penalty
  picked by validation AUROC: the simplest model a reader would try first.

Writes ``benchmarks/results/<name>.{json,md}`` and, for split 0, ROC, precision-recall and
calibration PNGs of every method; CPU time per epoch and for the whole run in the table.
``--merge A,B,...`` instead gathers the measured records of earlier result files (splits
run separately; a later file's figure replaces an earlier one's for the same split and
method) into one table, each record keeping the command and commit that produced it.

    python benchmarks/physionet.py --data-dir ../shared/data/physionet2012 --profile cpu
"""

from __future__ import annotations

import argparse
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
# Minutes per run and model sizes. The CPU profile fits the five splits in a few hours on
# 2 cores; the GPU profile is sized for one H100/H200 lease.
PROFILES = {
    "cpu": dict(pretrain=12.0, finetune=6.0, d_model=64, latent_dim=16, set_layers=1,
                seq_layers=2, d_ff=128, batch_size=64),
    "gpu": dict(pretrain=1.5, finetune=0.8, d_model=128, latent_dim=32, set_layers=2,
                seq_layers=4, d_ff=256, batch_size=128),
    "smoke": dict(pretrain=0.2, finetune=0.1, d_model=32, latent_dim=8, set_layers=1,
                  seq_layers=1, d_ff=64, batch_size=32),
}
SIZES = ("d_model", "latent_dim", "set_layers", "seq_layers", "d_ff")
METHODS = ("timetok-head-only", "timetok-full", "scratch", "gbt", "logistic")
PUBLISHED = [  # (method, AUROC, AUPRC): the 5-split protocol, as compared by ISTS-PLM
    ("ISTS-PLM", 0.876, 0.576),
    ("Warpformer", 0.866, 0.555),
    ("ViTST", 0.851, 0.511),
    ("mTAND", 0.842, 0.482),
    ("Raindrop", 0.828, 0.440),
]
REFERENCE = "ISTS-PLM (KDD 2025), comparison on the 5-split protocol"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared/data"
                                                  / "physionet2012"))
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--splits", default="0,1,2,3,4")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--bucket", default="1", help="'exact' or hours per set")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep the first N stays (a smoke run); the protocol uses all")
    parser.add_argument("--name", default="physionet")
    parser.add_argument("--runs", default="runs/bench-physionet")
    parser.add_argument("--merge", default=None,
                        help="result names to gather into --name instead of running")
    parser.add_argument("--note", default="", help="a line for the merged table (--merge)")
    args = parser.parse_args()
    if args.merge:
        merge(args.name, args.merge.split(","),
              "python benchmarks/physionet.py " + shlex.join(sys.argv[1:]), args.note)
        return 0

    from rich.console import Console

    from timetok.core.console import quiet
    from timetok.core.report import machine

    quiet()
    console = Console()
    command = "python benchmarks/physionet.py " + shlex.join(sys.argv[1:])
    where, started = machine(), time.perf_counter()
    per_split, timings = [], {}

    def save(final: bool) -> None:
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        records = measured_records(per_split, timings, where, command)
        records += [record("physionet", "p12", "all", "timetok", metric, value, "measured",
                           command, where)
                    for metric, value in (("cpu_s", cpu.ru_utime + cpu.ru_stime),
                                          ("wall_s", time.perf_counter() - started))]
        write(args.name, records, final, args.name)

    from timetok.core.report import record

    for split in [int(s) for s in args.splits.split(",")]:
        scores = run_split(args, split, console, timings)
        per_split += [{"split": split, "method": m, **v} for m, v in scores.items()]
        save(final=False)
    save(final=True)
    return 0


def run_split(args, split: int, console, timings: dict) -> dict[str, dict]:
    """Every method on one split -> {method: {auroc, auprc}}; plots for split 0."""
    import lightning as L

    from timetok.core.train.runner import RunOptions, train_and_export
    from timetok.setvae.data import RecordsDataModule
    from timetok.setvae.evaluate import mortality_report
    from timetok.setvae.pipeline import MortalityClassifier
    from timetok.setvae.recipe import finetune_module, pretrain_module

    profile = PROFILES[args.profile]
    bucket = args.bucket if args.bucket == "exact" else float(args.bucket)
    dm = RecordsDataModule("physionet2012", split=split, bucket=bucket, limit=args.limit,
                           batch_size=profile["batch_size"], data_dir=args.data_dir)
    data = dm.load()
    records, index = data.records, data.index
    test_labels = records.labels[index["test"]]
    run = Path(args.runs) / f"split{split}"
    methods = args.methods.split(",")
    sizes = {k: profile[k] for k in SIZES}
    scores, curves = {}, {}

    def train(module, out: Path, minutes: float, what: str) -> None:
        L.seed_everything(split, verbose=False)
        options = RunOptions(max_time=minutes, seed=split, progress=False,
                             accelerator="auto", devices="1", checkpoint_every=10_000)
        summary = train_and_export(module, dm, out, options)
        timings[(split, what)] = summary["wall_s"] / max(summary["epochs"], 1)

    def score(method: str, probs: np.ndarray) -> None:
        report = mortality_report(probs, test_labels)
        scores[method] = {"auroc": report["auroc"], "auprc": report["auprc"]}
        curves[method] = report
        console.print(f"split {split} {method}: AUROC {report['auroc']:.4f}, "
                      f"AUPRC {report['auprc']:.4f}")

    if {"timetok-head-only", "timetok-full"} & set(methods):
        L.seed_everything(split, verbose=False)
        train(pretrain_module(data, **sizes), run / "pretrain", profile["pretrain"],
              "pretrain")
    for method, policy in (("timetok-head-only", "head-only"), ("timetok-full", "full")):
        if method in methods:
            L.seed_everything(split, verbose=False)
            train(finetune_module(run / "pretrain", data, freeze_policy=policy), run / method,
                  profile["finetune"], method)
            model = MortalityClassifier.from_pretrained(run / method)
            score(method, model.predict_proba(records, index["test"]))
    if "scratch" in methods:
        L.seed_everything(split, verbose=False)
        train(finetune_module(None, data, scratch=True, **sizes), run / "scratch",
              profile["finetune"], "scratch")
        model = MortalityClassifier.from_pretrained(run / "scratch")
        score("scratch", model.predict_proba(records, index["test"]))
    if {"gbt", "logistic"} & set(methods):
        features = {part: summary_features(records, i) for part, i in index.items()}
        labels = {part: records.labels[i] for part, i in index.items()}
    if "gbt" in methods:
        begin = time.perf_counter()
        model, chosen = fit_gbt(features["train"], labels["train"], features["val"],
                                labels["val"], split)
        timings[(split, f"gbt (learning rate {chosen['learning_rate']})")] = (
            time.perf_counter() - begin)
        score("gbt", model.predict_proba(features["test"])[:, 1])
    if "logistic" in methods:
        begin = time.perf_counter()
        predict, chosen = fit_logistic(features["train"], labels["train"], features["val"],
                                       labels["val"])
        timings[(split, f"logistic (C {chosen['C']})")] = time.perf_counter() - begin
        score("logistic", predict(features["test"]))
    if split == 0 and curves:
        plot_curves(args.name, curves)
    return scores


SUMMARIES = ("last", "mean", "min", "max", "count", "hours_since_last")


def summary_features(records, index: np.ndarray) -> np.ndarray:
    """``[n, V * 6 + P]`` float32 features of the stays ``index [n]`` of ``records``."""
    index = np.asarray(index, dtype=np.int64)
    rows = records.observations(index)
    n, v = len(index), len(records.variable_names)
    stay = np.repeat(np.arange(n), records.counts()[index])
    cell = stay * v + records.variables[rows].astype(np.int64)  # (stay, variable) pairs
    values = records.values[rows].astype(np.float64)
    times = records.times[rows].astype(np.float64)
    count = np.bincount(cell, minlength=n * v).astype(np.float64)
    seen = count > 0
    mean = np.bincount(cell, values, minlength=n * v) / np.maximum(count, 1)
    low, high = np.full(n * v, np.inf), np.full(n * v, -np.inf)
    np.minimum.at(low, cell, values)
    np.maximum.at(high, cell, values)
    # Observations are sorted by time within a stay: the last write of a cell is its latest.
    last, last_time = np.full(n * v, np.nan), np.full(n * v, np.nan)
    last[cell], last_time[cell] = values, times
    end = np.full(n, 0.0)
    np.maximum.at(end, stay, times)
    since = np.repeat(end, v) - last_time
    columns = [last, mean, low, high, count, since]
    features = np.stack([np.where(seen | (c is count), c, np.nan) for c in columns], axis=-1)
    features = features.reshape(n, v * len(SUMMARIES))
    return np.concatenate([features, records.statics[index]], axis=1).astype(np.float32)


def fit_gbt(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
            seed: int) -> tuple[object, dict]:
    """The tree model with the best validation AUROC over three learning rates, early
    stopped on the validation stays -> (model, {"learning_rate", "val_auroc"})."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    best, chosen = None, {}
    for rate in (0.03, 0.06, 0.1):
        model = HistGradientBoostingClassifier(
            learning_rate=rate, max_iter=1000, max_leaf_nodes=31, l2_regularization=1.0,
            early_stopping=True, n_iter_no_change=50, random_state=seed)
        model.fit(x_train, y_train, X_val=x_val, y_val=y_val)  # scikit-learn >= 1.7
        auroc = roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])
        if best is None or auroc > chosen["val_auroc"]:
            best, chosen = model, {"learning_rate": rate, "val_auroc": float(auroc)}
    return best, chosen


def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                 y_val: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """Logistic regression with the best validation AUROC over four penalties ->
    (probability of class 1 of a feature matrix, {"C", "val_auroc"})."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    mean = np.nan_to_num(np.nanmean(x_train, axis=0))
    scale = np.nan_to_num(np.nanstd(x_train, axis=0), nan=1.0) + 1e-6

    def prepare(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / scale
        missing = np.isnan(z)
        return np.concatenate([np.nan_to_num(z).clip(-5, 5), missing], axis=1)

    best, chosen = None, {}
    for c in (0.003, 0.01, 0.03, 0.1):
        model = LogisticRegression(C=c, max_iter=5000).fit(prepare(x_train), y_train)
        auroc = roc_auc_score(y_val, model.decision_function(prepare(x_val)))
        if best is None or auroc > chosen["val_auroc"]:
            best, chosen = model, {"C": c, "val_auroc": float(auroc)}
    return (lambda x: best.predict_proba(prepare(x))[:, 1]), chosen


def plot_curves(name: str, curves: dict[str, dict]) -> None:
    """ROC, precision-recall and calibration of every method on split 0's test stays."""
    from timetok.core.plots import plot_calibration, plot_precision_recall, plot_roc

    plot_roc(RESULTS / f"{name}_roc.png", curves)
    plot_precision_recall(RESULTS / f"{name}_pr.png", curves)
    plot_calibration(RESULTS / f"{name}_calibration.png", curves)


def measured_records(per_split: list[dict], timings: dict, where: str, command: str
                     ) -> list[dict]:
    """Test AUROC and AUPRC per split and method, and seconds per epoch, as records."""
    from timetok.core.report import record

    records = [record("physionet", "p12", f"split={r['split']}", r["method"], metric,
                      r[metric], "measured", command, where)
               for r in per_split for metric in ("auroc", "auprc")]
    return records + [record("physionet", "p12", f"split={s}", m, "wall_s_per_epoch", v,
                             "measured", command, where) for (s, m), v in timings.items()]


def merge(name: str, sources: list[str], command: str, note: str = "") -> None:
    """One table from the measured records of ``sources`` (later ones win per split,
    method and metric); the run totals are summed."""
    import json

    chosen: dict[tuple, dict] = {}
    totals: dict[str, float] = {}
    for source in sources:
        for r in json.loads((RESULTS / f"{source}.json").read_text()):
            if r["source"] != "measured":
                continue
            if r["setting"] == "all":
                totals[r["metric"]] = totals.get(r["metric"], 0.0) + r["value"]
            else:
                chosen[(r["setting"], r["method"], r["metric"])] = r
    where = "; ".join(sorted({r["machine"] for r in chosen.values()}))
    from timetok.core.report import record

    records = list(chosen.values()) + [
        record("physionet", "p12", "all", "timetok", metric, value, "measured", command,
               where) for metric, value in totals.items()]
    write(name, records, True, sources[0], sources, command, note)


def write(name: str, records: list[dict], final: bool, figures: str,
          sources: list[str] | None = None, merged_by: str = "", note: str = "") -> None:
    """Records (plus the published figures) and the Markdown tables: mean ± sd over
    splits, per split, timings; ``figures`` names the run whose split-0 plots to show."""
    from timetok.core.report import markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text

    records = records + [record("physionet", "p12", "5 splits", m, metric, value,
                                "published", REFERENCE)
                         for m, auroc, auprc in PUBLISHED
                         for metric, value in (("auroc", auroc), ("auprc", auprc))]
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS / f"{name}.json", records)
    scores: dict[tuple[int, str], dict] = {}
    for r in records:
        if r["source"] == "measured" and r["metric"] in ("auroc", "auprc"):
            split = int(r["setting"].removeprefix("split="))
            scores.setdefault((split, r["method"]), {"split": split, "method": r["method"]})[
                r["metric"]] = r["value"]
    per_split = sorted(scores.values(), key=lambda row: row["split"])
    summary = []
    for method in dict.fromkeys(r["method"] for r in per_split):
        runs = [r for r in per_split if r["method"] == method]
        row = {"method": method, "splits": len(runs), "source": "measured"}
        for metric in ("auroc", "auprc"):
            values = [r[metric] for r in runs]
            row[metric] = statistics.fmean(values)
            row[f"{metric} sd"] = statistics.stdev(values) if len(values) > 1 else None
        summary.append(row)
    summary += [{"method": m, "auroc": auroc, "auprc": auprc, "source": "published"}
                for m, auroc, auprc in PUBLISHED]
    seconds = "seconds per epoch (the whole fit for gbt, logistic)"
    timing_rows = [{"split": r["setting"].removeprefix("split="), "run": r["method"],
                    seconds: r["value"]}
                   for r in records if r["metric"] == "wall_s_per_epoch"]
    totals = {r["metric"]: r["value"] for r in records if r["setting"] == "all"}
    commands = sorted({r["command"] for r in records if r["source"] == "measured"})
    where = "; ".join(sorted({r["machine"] for r in records if r["source"] == "measured"}))
    text = (f"# PhysioNet 2012 in-hospital mortality{'' if final else ' (partial)'}\n\n"
            f"Machine: {where}. Test AUROC and AUPRC, mean ± sd over splits; selection on "
            f"validation only; published figures from {REFERENCE}. "
            f"{'Runs' if sources else 'Whole run'}: {totals.get('wall_s', 0) / 60:.1f} min "
            f"wall, {totals.get('cpu_s', 0) / 60:.1f} min CPU.\n\n"
            + (f"![ROC]({figures}_roc.png) ![PR]({figures}_pr.png) "
               f"![calibration]({figures}_calibration.png) (split 0)\n\n"
               if (RESULTS / f"{figures}_roc.png").is_file() else "")
            + markdown_table(summary, ["method", "auroc", "auroc sd", "auprc", "auprc sd",
                                       "splits", "source"])
            + (f"\n\n{note}" if note else "")
            + "\n\nPer split:\n\n"
            + markdown_table(per_split, ["split", "method", "auroc", "auprc"])
            + "\n\nTimings:\n\n"
            + markdown_table(timing_rows, ["split", "run", seconds])
            + "\n\n" + ("Gathered from " + ", ".join(f"`{s}.json`" for s in sources)
                        + f" by `{merged_by}`; runs:\n\n" if sources else "Command: ")
            + "\n".join(f"- `{c}`" if sources else f"`{c}`" for c in commands
                        if "--merge" not in c) + "\n")
    atomic_write_text(RESULTS / f"{name}.md", text)


if __name__ == "__main__":
    sys.exit(main())
