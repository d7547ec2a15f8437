"""Micro-Doppler generation: 31 simulated users, a 2-D VQ-VAE and a user-conditioned prior.

Each profile is a pair of config files, ``configs/doppler/<profile>/train.yaml`` and
``evaluate.yaml``, the settings of ``timetok doppler train`` and ``timetok doppler
evaluate``; this script runs those library recipes with them. In one run:

1. simulate 31 users x 50 images (128 x 128) with ``timetok doppler simulate``'s model,
   timed; split within each user 70/10/20 (train/val/test);
2. train the tokenizer, then the prior over its frozen codes (``timetok doppler train``'s
   recipe with ``train.yaml``);
3. evaluate (``timetok doppler evaluate``'s recipe with ``evaluate.yaml``) each sampling
   method: ``timetok`` (the user prefix, temperature 1), ``timetok-cfg<s>`` (classifier-free
   guidance at each scale s of ``--guidance``) and ``unconditional`` (the null prefix for
   every image: what the user classifier scores without conditioning, the floor
   conditioning must lift);
4. reconstruction on the simulated test images and on the real PARRAD radar frames, by the
   simulated-data tokenizer (zero-shot) and by the same architecture trained on PARRAD's
   own training frames (``timetok-parrad``).

Targets (the issue's): codebook usage >= 95 %, user accuracy on generated >= 0.9 x on real,
feature Fréchet distance <= 1.5 x the real train-vs-test floor, no memorised copies.
Writes ``benchmarks/results/<name>.{json,md}`` and the PNG grids beside them; the records
name the config files that ran. ``--set KEY=VALUE`` changes one setting of ``train.yaml``
for this run (e.g. ``--set code_noise=0.2``). ``--ceiling-only`` scores the tokenizer
ceiling of an earlier run's folders alone (``<name>_ceiling.{json,md}``).
``--tokenizer-only`` runs steps 1 and 2 without the prior and scores the tokenizer's
ceiling: the user classifier trained on real images, on the reconstructions of the real
test images; and, to tell lost identity from a shift in texture, a classifier trained on
the reconstructions of the training images (``user_acc_rebuilt_trained``); it writes
``<name>_tokenizer.{json,md}``. ``--tokenizer-from`` reuses a tokenizer trained by an
earlier run and trains the prior alone; ``--prior-from`` also reuses a generator trained
over that tokenizer (e.g. a ``doppler_prior.py`` variant) and only evaluates it.
``--val-seeds N`` evaluates with N seeds, each drawing its own user classifier and
samples, and adds their mean and standard deviation: one draw's accuracy ratio moves by
up to 0.16.

The committed headline (``benchmarks/results/doppler.md``) is the ``grid32-cpu`` profile:

    python benchmarks/doppler.py --profile grid32-cpu --val-seeds 3 --parrad none
"""

from __future__ import annotations

import argparse
import csv
import resource
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONFIGS = Path(__file__).parents[1] / "configs" / "doppler"
# What each profile simulates, and the epochs of the tokenizer trained on PARRAD's frames.
SIMULATION = {"smoke": dict(users=4, per_user=10, parrad_epochs=2),
              "gpu": dict(users=31, per_user=50, parrad_epochs=60)}
DEFAULT_SIMULATION = dict(users=31, per_user=50, parrad_epochs=30)
PUBLISHED = [("reference 002 (target)", "codebook_usage", 0.80)]


def profiles() -> list[str]:
    return sorted(p.name for p in CONFIGS.iterdir() if (p / "train.yaml").is_file())


def settings(pairs: list[str]) -> dict:
    """``--set KEY=VALUE`` pairs, each value read as YAML (numbers, true/false, lists)."""
    import yaml

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set takes KEY=VALUE, got {pair!r}")
        values[key.strip()] = yaml.safe_load(value)
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=profiles(), default="grid32-cpu",
                        help="configs/doppler/<profile>/{train,evaluate}.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="change a setting of the profile's train.yaml for this run")
    parser.add_argument("--guidance", default="2,3",
                        help="classifier-free guidance scales, comma-separated: one "
                             "timetok-cfg<s> method each")
    parser.add_argument("--parrad", default=str(Path(__file__).parents[2] / "shared/data"),
                        help="folder holding radar_parrad_sample/ (skipped when absent)")
    parser.add_argument("--runs", default="runs/bench-doppler")
    parser.add_argument("--name", default="doppler")
    parser.add_argument("--seed", type=int, default=0,
                        help="the simulation's, the split's and the training's seed, and "
                             "the first evaluation seed")
    parser.add_argument("--val-seeds", type=int, default=1,
                        help="evaluate with this many seeds from --seed on (each draws its "
                             "own user classifier and samples) and report their mean and "
                             "standard deviation beside each seed's figures")
    parser.add_argument("--ceiling-only", action="store_true",
                        help="score the tokenizer ceiling of the runs in --runs, nothing else")
    parser.add_argument("--tokenizer-only", action="store_true",
                        help="simulate, train the tokenizer and score its ceiling; no prior")
    parser.add_argument("--tokenizer-from", default=None,
                        help="a trained tokenizer folder (an earlier run's <runs>/tokenizer on "
                             "the same simulation and seed) to reuse instead of training one")
    parser.add_argument("--prior-from", default=None,
                        help="a generator folder trained over the --tokenizer-from tokenizer "
                             "to evaluate instead of training a prior")
    args = parser.parse_args()
    if args.prior_from and not args.tokenizer_from:
        parser.error("--prior-from needs --tokenizer-from, the tokenizer its prior was "
                     "trained over")
    if args.val_seeds < 1:
        parser.error(f"--val-seeds must be >= 1, got {args.val_seeds}")
    if args.tokenizer_only:  # its tables and figures go beside a full run's, not over them
        args.name += "_tokenizer"
    return args


def main() -> int:
    args = parse_args()
    from timetok.core.console import quiet
    from timetok.core.report import machine
    from timetok.doppler.config import EvaluateConfig, TrainConfig

    quiet()
    guidance = [float(s) for s in args.guidance.split(",")]  # before hours of training
    runs = Path(args.runs)
    folder = CONFIGS / args.profile
    config = TrainConfig.from_yaml(folder / "train.yaml", **settings(args.sets)).replace(
        data_path=str(runs / "sim"), save_path=str(runs), seed=args.seed, progress=False,
        overwrite=True)
    evaluation = EvaluateConfig.from_yaml(folder / "evaluate.yaml").replace(
        model=str(runs / "generator"), data_path=str(runs / "sim"), progress=False)
    names = [str(p.relative_to(CONFIGS.parents[1])) for p in sorted(folder.glob("*.yaml"))]
    command = ("python benchmarks/doppler.py " + shlex.join(sys.argv[1:])
               + f" (configs: {', '.join(names)})")
    where, started = machine(), time.perf_counter()
    run = Run(args, config, evaluation, runs, where, command)
    if args.ceiling_only:
        run.add_seeds("tokenizer-ceiling", [ceiling(runs, evaluation, seed)
                                            for seed in run.seeds])
        run.write(f"{args.name}_ceiling", trains=False)
        return 0
    run.simulate()
    tokenizer = run.train_tokenizer()
    run.reconstructions(tokenizer)
    if args.tokenizer_only:
        from timetok.doppler.evaluate import evaluate_tokenizer

        figures = evaluate_tokenizer(evaluation.replace(
            model=str(runs / "tokenizer"), out=str(runs / "tokenizer-evaluation"),
            seed=args.seed))
        for metric, value in figures.items():
            run.add("tokenizer-ceiling", metric, value)
        run.timings["whole run s"] = time.perf_counter() - started
        run.write(args.name)
        return 0
    run.train_prior()
    shutil.rmtree(runs / "classifier", ignore_errors=True)  # one per run and seed, anew
    for method, options in sampling_methods(guidance).items():
        run.add_seeds(method, [report_metrics(evaluate(runs, evaluation, method, options,
                                                       seed)) for seed in run.seeds])
        if method == "timetok":
            copy_figure(runs / "validation" / f"seed{args.seed}" / method / "grid.png",
                        f"{args.name}_grid.png")
    run.add_seeds("tokenizer-ceiling", [ceiling(runs, evaluation, seed) for seed in run.seeds])
    parrad = Path(args.parrad) / "radar_parrad_sample"
    if parrad.is_dir():
        run.parrad(parrad, tokenizer)
    else:
        print(f"skipped PARRAD: {parrad} not found", flush=True)
    run.timings["whole run s"] = time.perf_counter() - started
    run.write(args.name)
    return 0


class Run:
    """One benchmark run: its settings, the rows it measured and the timings."""

    def __init__(self, args, config, evaluation, runs: Path, where: str, command: str):
        self.args, self.config, self.evaluation = args, config, evaluation
        self.runs, self.where, self.command = runs, where, command
        self.simulation = SIMULATION.get(args.profile, DEFAULT_SIMULATION)
        self.dataset = f"simulated-{self.simulation['users']}"
        self.seeds = list(range(args.seed, args.seed + args.val_seeds))
        self.rows: list[dict] = []
        self.timings: dict[str, float] = {}

    def add(self, method: str, metric: str, value: float, setting: str = "-",
            dataset: str | None = None) -> None:
        dataset = dataset or self.dataset
        self.rows.append(dict(dataset=dataset, setting=setting, method=method, metric=metric,
                              value=value))
        print(f"{dataset:14s} {method:24s} {metric:20s} {value:.4f}", flush=True)

    def add_seeds(self, method: str, per_seed: list[dict[str, float]]) -> None:
        """Each seed's figures, and with several seeds their mean and sample standard
        deviation (as the other benchmarks give it)."""
        for seed, figures in zip(self.seeds, per_seed, strict=True):
            for metric, value in figures.items():
                self.add(method, metric, value, f"seed={seed}")
        if len(per_seed) > 1:
            for metric in per_seed[0]:
                values = [figures[metric] for figures in per_seed if metric in figures]
                self.add(method, metric, statistics.fmean(values), "mean")
                if len(values) > 1:
                    self.add(method, metric, statistics.stdev(values), "sd")

    def simulate(self) -> None:
        import dataclasses

        from timetok.core.utils import cpu_cores
        from timetok.doppler.simulator import RadarConfig, simulate_dataset

        radar = dataclasses.replace(RadarConfig(), size=self.config.image_size)
        started = time.perf_counter()
        simulate_dataset(self.runs / "sim", self.simulation["users"],
                         self.simulation["per_user"], radar, self.args.seed, progress=False,
                         overwrite=True, workers=cpu_cores())
        images = self.simulation["users"] * self.simulation["per_user"]
        self.add("simulator", "images_per_s", images / (time.perf_counter() - started))

    def train_tokenizer(self):
        """The run's tokenizer: trained by the recipe, or copied from --tokenizer-from."""
        from timetok.core.devices import resolve_device
        from timetok.doppler.model import SpectrogramTokenizer
        from timetok.doppler.recipe import train

        if self.args.tokenizer_from:
            shutil.rmtree(self.runs / "tokenizer", ignore_errors=True)
            shutil.copytree(self.args.tokenizer_from, self.runs / "tokenizer")
        else:
            summary = train(self.config.replace(stage="tokenizer"))["tokenizer"]
            self.timings["tokenizer s/epoch"] = summary["wall_s"] / max(summary["epochs"], 1)
            self.timings["tokenizer epochs"] = summary["epochs"]
        return SpectrogramTokenizer.from_pretrained(self.runs / "tokenizer",
                                                    resolve_device(self.evaluation.device))

    def reconstructions(self, tokenizer) -> None:
        """Reconstruction and codebook figures of the simulated train and test images."""
        from timetok.doppler.data import real_splits
        from timetok.doppler.metrics import reconstruction_figures

        splits = real_splits(self.runs / "tokenizer", self.runs / "sim")
        (train_images, train_users), (images, users) = splits["train"], splits["test"]
        figures, recon = reconstruction_figures(tokenizer, images, users)
        for metric in ("mse", "psnr", "codes_per_user_min", "codes_per_user_mean"):
            self.add("timetok", f"recon_{metric}", figures[metric])
        train_figures, _ = reconstruction_figures(tokenizer, train_images, train_users)
        self.add("timetok", "codebook_usage", train_figures["usage"])
        self.add("timetok", "codebook_usage_test", figures["usage"])
        if not self.args.tokenizer_from:  # a reused tokenizer's figures stand beside its run
            grid(f"{self.args.name}_reconstructions.png", images, users, recon,
                 "reconstruction")
            copy_figure(self.runs / "tokenizer" / "codebook_snapshots.png",
                        f"{self.args.name}_codebook.png")

    def train_prior(self) -> None:
        from timetok.doppler.recipe import train

        if self.args.prior_from:
            shutil.rmtree(self.runs / "generator", ignore_errors=True)
            shutil.copytree(self.args.prior_from, self.runs / "generator")
        else:
            summary = train(self.config.replace(stage="prior"))["prior"]
            self.timings["prior s/epoch"] = summary["wall_s"] / max(summary["epochs"], 1)
            self.timings["prior epochs"] = summary["epochs"]
        self.timings |= prior_figures(self.runs / "generator")

    def parrad(self, folder: Path, tokenizer) -> None:
        """PARRAD test frames rebuilt by the simulated-data tokenizer and by one trained on
        PARRAD's own training frames."""
        from timetok.doppler.data import real_splits
        from timetok.doppler.metrics import reconstruction_figures
        from timetok.doppler.model import SpectrogramTokenizer
        from timetok.doppler.recipe import train

        save_path = self.runs / "parrad"
        train(self.config.replace(
            dataset="parrad", data_path=None, data_dir=str(folder.parent), stage="tokenizer",
            tokenizer_epochs=self.simulation["parrad_epochs"], save_path=str(save_path),
            batch_size=min(self.config.batch_size, 16), tokenizer_from=None))
        images, users = real_splits(save_path / "tokenizer", data_dir=folder.parent)["test"]
        own = SpectrogramTokenizer.from_pretrained(save_path / "tokenizer",
                                                   next(tokenizer.parameters()).device)
        out = {"timetok-simulated": reconstruction_figures(tokenizer, images, users)[0]}
        out["timetok-parrad"], recon = reconstruction_figures(own, images, users)
        grid(f"{self.args.name}_parrad_reconstructions.png", images, users, recon,
             "reconstruction")
        for method, figures in out.items():
            for key in ("mse", "psnr", "usage"):
                metric = "codebook_usage" if key == "usage" else f"recon_{key}"
                self.add(method, metric, figures[key], dataset="parrad")

    def write(self, name: str, trains: bool | None = None) -> None:
        trains = not self.args.prior_from if trains is None else trains
        write(name, self.rows, self.timings, self.where, self.command,
              dict(self.simulation, size=self.config.image_size, amp=self.config.amp,
                   trains=trains))


def validation_history(run: Path) -> list[dict]:
    """The rows of a run folder's ``history.csv`` that hold a validation."""
    with open(run / "history.csv") as f:
        return [row for row in csv.DictReader(f) if row.get("val_loss")]


def prior_figures(generator: Path) -> dict:
    """The exported prior's validation loss and user nats per image (against the null prefix
    and against a wrong user), those its history holds: the epoch whose monitored score the
    run recorded as its best where it exported the best weights, else the last epoch."""
    import json

    history = validation_history(generator)
    summary = json.loads((generator / "training.json").read_text())
    monitor, row = summary["monitor"], history[-1]
    if summary.get("exported") == "best":
        best = summary[f"best_{monitor}"]
        row = min(history, key=lambda r: abs(float(r[monitor]) - best))
    return {f"prior {key}": float(row[key])
            for key in ("val_loss", "val_user_nats", "val_wrong_user_nats") if row.get(key)} | {
        "prior exported epoch": float(row["epoch"])}


def sampling_methods(guidance: list[float]) -> dict[str, dict]:
    return {"timetok": {"guidance_scale": None},
            **{f"timetok-cfg{s:g}": {"guidance_scale": s} for s in guidance},
            "unconditional": {"guidance_scale": None, "unconditional": True}}


def evaluate(runs: Path, evaluation, method: str, options: dict, seed: int) -> dict:
    """The evaluate recipe on the run's generator, one user classifier per seed."""
    from timetok.doppler.evaluate import evaluate as run

    return run(evaluation.replace(
        seed=seed, classifier=str(runs / "classifier" / f"seed{seed}"),
        out=str(runs / "validation" / f"seed{seed}" / method), **options))


def ceiling(runs: Path, evaluation, seed: int) -> dict[str, float]:
    """The run's classifier of ``seed`` on the tokenizer's reconstructions of the real test
    images."""
    from timetok.doppler.classifier import UserClassifier
    from timetok.doppler.data import real_splits
    from timetok.doppler.evaluate import tokenizer_ceiling
    from timetok.doppler.metrics import reconstruction_figures
    from timetok.doppler.model import GeneratorModel

    tokenizer = GeneratorModel.from_pretrained(runs / "generator").tokenizer
    splits = real_splits(runs / "generator", evaluation.data_path)
    (train, _), (test, users) = splits["train"], splits["test"]
    _, recon = reconstruction_figures(tokenizer, test, users)
    return tokenizer_ceiling(UserClassifier.load(runs / "classifier" / f"seed{seed}"), train,
                             test, recon, users)


def report_metrics(report: dict) -> dict[str, float]:
    metrics = {
        "user_acc_real": report["accuracy"]["real_test"],
        "user_acc_generated": report["accuracy"]["generated"],
        "user_acc_ratio": report["accuracy"]["ratio"],
        "fd_generated": report["frechet"]["generated_vs_real_test"],
        "fd_floor": report["frechet"]["real_train_vs_real_test"],
        "fd_ratio": report["frechet"]["ratio"],
        "diversity_ratio": report["diversity"]["ratio"],
        "memorised_share": report["memorisation"]["features"]["share_below"],
        "nearest_train_excess": report["memorisation"]["pixels"]["excess"],
        "near_exact_copies": report["memorisation"]["pixels"]["near_exact_copies"],
        "codebook_usage_generated": report["codebook"].get("usage_generated"),
        "images_per_s": report["generation"]["images_per_s"],
    }
    return {k: float(v) for k, v in metrics.items() if v is not None}


def grid(name: str, images, users, other, label: str) -> None:
    from timetok.doppler.report import pick_users, plot_grid

    plot_grid(RESULTS / name, images, users, other, users, pick_users(sorted(set(users))),
              per_user=4, label=label)


def copy_figure(source: Path, name: str) -> None:
    if source.is_file():
        shutil.copyfile(source, RESULTS / name)


def write(name: str, rows: list[dict], timings: dict, where: str, command: str,
          profile: dict) -> None:
    from timetok.core.report import markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    records = [record("doppler", r["dataset"], r["setting"], r["method"], r["metric"],
                      r["value"], "measured", command, where) for r in rows]
    records += [record("doppler", "simulated-31", "-", method, metric, value, "published",
                       "reference 002's own target")
                for method, metric, value in PUBLISHED]
    records += [record("doppler", "all", "-", "timetok",
                       what.replace(" s/epoch", "_s_per_epoch").replace(" ", "_"), value,
                       "measured", command, where) for what, value in timings.items()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS / f"{name}.json", records)
    table = {}
    for r in rows:
        table.setdefault((r["dataset"], r["method"], r["setting"]), {})[r["metric"]] = r["value"]
    generation = ["user_acc_real", "user_acc_generated", "user_acc_ratio", "fd_generated",
                  "fd_floor", "fd_ratio", "diversity_ratio", "memorised_share",
                  "nearest_train_excess", "near_exact_copies", "images_per_s"]
    if any("user_acc_rebuilt_trained" in v for v in table.values()):
        generation.insert(3, "user_acc_rebuilt_trained")
    recon = ["recon_mse", "recon_psnr", "codebook_usage", "codebook_usage_test",
             "recon_codes_per_user_min", "recon_codes_per_user_mean"]
    gen_rows = [{"dataset": d, "method": m, "setting": s, **v}
                for (d, m, s), v in table.items() if "user_acc_ratio" in v]
    recon_rows = [{"dataset": d, "method": m, **v} for (d, m, _), v in table.items()
                  if "recon_mse" in v]
    recon_rows += [{"dataset": "simulated-31", "method": method, metric: value,
                    "source": "published"} for method, metric, value in PUBLISHED]
    timing_rows = [{"what": k, "value": v} for k, v in timings.items()]
    timing_rows.append({"what": "whole run, CPU s", "value": cpu.ru_utime + cpu.ru_stime})
    sim = table.get((f"simulated-{profile['users']}", "simulator", "-"), {})
    rate = f" (simulated at {sim['images_per_s']:.0f} images/s)" if sim else ""

    def figures(*pairs: tuple[str, str]) -> str:
        shown = [f"![{label}]({name}_{suffix}.png)" for label, suffix in pairs
                 if (RESULTS / f"{name}_{suffix}.png").is_file()]
        return " ".join(shown) + "\n\n" if shown else ""

    precision = "mixed precision" if profile["amp"] else "float32"
    training = (f"training in {precision}" if profile["trains"] else
                "evaluating models trained by an earlier run")
    text = (f"# Micro-Doppler generation\n\nMachine: {where}, {training}. "
            f"{profile['users']} simulated "
            f"users x {profile['per_user']} images at {profile['size']}x{profile['size']}"
            f"{rate}, split per user 70/10/20; targets: codebook usage >= 0.95, user "
            "accuracy ratio >= 0.9, Fréchet ratio <= 1.5, no memorised copies.\n\n"
            + figures(("generated", "grid")) + "## Generation (test images of every user)\n\n"
            + markdown_table(gen_rows, ["method", "setting", *generation]) + "\n\n"
            + ("## Tokenizer: reconstruction and codebook\n\n"
               + markdown_table(recon_rows, ["dataset", "method", *recon, "source"]) + "\n\n"
               + figures(("reconstructions", "reconstructions"),
                         ("PARRAD", "parrad_reconstructions"), ("codebook", "codebook"))
               if any("recon_mse" in r for r in recon_rows) else "")
            + "## Training and time\n\n" + markdown_table(timing_rows, ["what", "value"])
            + f"\n\nCommand: `{command}`\n")
    atomic_write_text(RESULTS / f"{name}.md", text)


if __name__ == "__main__":
    sys.exit(main())
