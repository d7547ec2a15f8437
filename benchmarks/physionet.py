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

Each SeqSetVAE run is the library's recipe (:mod:`timetok.setvae.recipe`) with a config of
``configs/setvae/physionet-<profile>/{pretrain,finetune,scratch}.yaml`` (split, seed, data
and run folder set per run), scored by its ``evaluate`` recipe: the commands a user runs.
Writes ``<out>/<name>.{json,md}`` (``--out`` defaults to ``benchmarks/results``) and, for
split 0, ROC and precision-recall PNGs of every method; CPU time per epoch and for the
whole run in the table.
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
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
CONFIGS = Path(__file__).parents[1] / "configs" / "setvae"
# Minutes per run and model sizes live in the configs. The CPU profile fits the five splits
# in a few hours on 2 cores; the GPU profile is sized for one H100/H200 lease.
PROFILES = ("cpu", "gpu", "smoke")
STAGES = ("pretrain", "finetune", "scratch")
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
    parser.add_argument("--profile", choices=PROFILES, default="cpu",
                        help="configs/setvae/physionet-PROFILE/{pretrain,finetune,scratch}.yaml")
    parser.add_argument("--splits", default="0,1,2,3,4")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--bucket", default=None,
                        help="'exact' or hours per set [default: the profile's, 1]")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep the first N stays (a smoke run); the protocol uses all")
    parser.add_argument("--name", default="physionet")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder of the results files [default: benchmarks/results]")
    parser.add_argument("--runs", default="runs/bench-physionet")
    parser.add_argument("--merge", default=None,
                        help="result names to gather into --name instead of running")
    parser.add_argument("--note", default="", help="a line for the merged table (--merge)")
    args = parser.parse_args()
    if args.merge:
        merge(args.out, args.name, args.merge.split(","),
              "python benchmarks/physionet.py " + shlex.join(sys.argv[1:]), args.note)
        return 0

    from rich.console import Console

    from timetok.core.console import quiet
    from timetok.core.report import machine

    quiet()
    console = Console()
    files = ", ".join(str(config_file(args.profile, stage).relative_to(CONFIGS.parents[1]))
                      for stage in STAGES)
    command = f"python benchmarks/physionet.py {shlex.join(sys.argv[1:])} (configs: {files})"
    where, started = machine(), time.perf_counter()
    per_split, timings = [], {}

    def save(final: bool) -> None:
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        records = measured_records(per_split, timings, where, command)
        records += [record("physionet", "p12", "all", "timetok", metric, value, "measured",
                           command, where)
                    for metric, value in (("cpu_s", cpu.ru_utime + cpu.ru_stime),
                                          ("wall_s", time.perf_counter() - started))]
        write(args.out, args.name, records, final, args.name)

    from timetok.core.report import record

    for split in [int(s) for s in args.splits.split(",")]:
        scores = run_split(args, split, console, timings)
        per_split += [{"split": split, "method": m, **v} for m, v in scores.items()]
        save(final=False)
    save(final=True)
    return 0


def config_file(profile: str, stage: str) -> Path:
    return CONFIGS / f"physionet-{profile}" / f"{stage}.yaml"


def run_split(args, split: int, console, timings: dict) -> dict[str, dict]:
    """Every method on one split -> {method: {auroc, auprc}}; plots for split 0."""
    from timetok.core.data.records import load_records
    from timetok.setvae import recipe
    from timetok.setvae.artifacts import first_stays
    from timetok.setvae.baseline import fit_logistic, summary_features
    from timetok.setvae.config import EvaluateConfig, FinetuneConfig, PretrainConfig
    from timetok.setvae.evaluate import mortality_report

    run = Path(args.runs) / f"split{split}"
    methods = args.methods.split(",")
    scores, curves = {}, {}
    settings = dict(split=split, seed=split, data_dir=args.data_dir, limit=args.limit,
                    progress=False, overwrite=True)
    if args.bucket is not None:
        settings["bucket"] = args.bucket

    def train(stage, config_class, file: str, method: str, **changes) -> None:
        config = config_class.from_yaml(config_file(args.profile, file), **settings,
                                        save_path=str(run / method), **changes)
        summary = stage(config)
        timings[(split, method)] = summary["wall_s"] / max(summary["epochs"], 1)

    def score(method: str, report: dict) -> None:
        scores[method] = {"auroc": report["auroc"], "auprc": report["auprc"]}
        curves[method] = report
        console.print(f"split {split} {method}: AUROC {report['auroc']:.4f}, "
                      f"AUPRC {report['auprc']:.4f}")

    def evaluate(method: str) -> None:
        score(method, recipe.evaluate(EvaluateConfig(model=str(run / method), baseline=False)))

    if {"timetok-head-only", "timetok-full"} & set(methods):
        train(recipe.pretrain, PretrainConfig, "pretrain", "pretrain")
    for method, policy in (("timetok-head-only", "head-only"), ("timetok-full", "none")):
        if method in methods:
            train(recipe.finetune, FinetuneConfig, "finetune", method, freeze=policy,
                  model=str(run / "pretrain"))
            evaluate(method)
    if "scratch" in methods:
        train(recipe.finetune, FinetuneConfig, "scratch", "scratch")
        evaluate("scratch")
    if {"gbt", "logistic"} & set(methods):
        records = load_records("physionet2012", data_dir=args.data_dir)
        records = first_stays(records, args.limit) if args.limit else records
        index = dict(zip(("train", "val", "test"), records.split(split), strict=True))
        features = {part: summary_features(records, i) for part, i in index.items()}
        labels = {part: records.labels[i] for part, i in index.items()}
    if "gbt" in methods:
        begin = time.perf_counter()
        model, chosen = fit_gbt(features["train"], labels["train"], features["val"],
                                labels["val"], split)
        timings[(split, f"gbt (learning rate {chosen['learning_rate']})")] = (
            time.perf_counter() - begin)
        score("gbt", mortality_report(model.predict_proba(features["test"])[:, 1],
                                      labels["test"]))
    if "logistic" in methods:
        begin = time.perf_counter()
        predict, chosen = fit_logistic(features["train"], labels["train"], features["val"],
                                       labels["val"])
        timings[(split, f"logistic (C {chosen['C']})")] = time.perf_counter() - begin
        score("logistic", mortality_report(predict(features["test"]), labels["test"]))
    if split == 0 and curves:
        plot_curves(args.out, args.name, curves)
    return scores


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


def plot_curves(out: Path, name: str, curves: dict[str, dict]) -> None:
    """ROC and precision-recall curves of every method on split 0's test stays."""
    from timetok.core.plots import plot_precision_recall, plot_roc

    plot_roc(out / f"{name}_split0_roc.png", curves)
    plot_precision_recall(out / f"{name}_split0_pr.png", curves)


def measured_records(per_split: list[dict], timings: dict, where: str, command: str
                     ) -> list[dict]:
    """Test AUROC and AUPRC per split and method, and seconds per epoch, as records."""
    from timetok.core.report import record

    records = [record("physionet", "p12", f"split={r['split']}", r["method"], metric,
                      r[metric], "measured", command, where)
               for r in per_split for metric in ("auroc", "auprc")]
    return records + [record("physionet", "p12", f"split={s}", m, "wall_s_per_epoch", v,
                             "measured", command, where) for (s, m), v in timings.items()]


def merge(out: Path, name: str, sources: list[str], command: str, note: str = "") -> None:
    """One table from the measured records of ``sources`` (later ones win per split,
    method and metric); the run totals are summed."""
    import json

    chosen: dict[tuple, dict] = {}
    totals: dict[str, float] = {}
    for source in sources:
        for r in json.loads((out / f"{source}.json").read_text()):
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
    write(out, name, records, True, sources[0], sources, command, note)


def write(out: Path, name: str, records: list[dict], final: bool, figures: str,
          sources: list[str] | None = None, merged_by: str = "", note: str = "") -> None:
    """Records (plus the published figures) and the Markdown tables: mean ± sd over
    splits, per split, timings; ``figures`` names the run whose split-0 plots to show."""
    from timetok.core.report import markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text

    records = records + [record("physionet", "p12", "5 splits", m, metric, value,
                                "published", REFERENCE)
                         for m, auroc, auprc in PUBLISHED
                         for metric, value in (("auroc", auroc), ("auprc", auprc))]
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / f"{name}.json", records)
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
            + (f"![ROC]({figures}_split0_roc.png) ![PR]({figures}_split0_pr.png) (split 0)\n\n"
               if (out / f"{figures}_split0_roc.png").is_file() else "")
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
    atomic_write_text(out / f"{name}.md", text)


if __name__ == "__main__":
    sys.exit(main())
