"""Micro-Doppler generation: 31 simulated users, a 2-D VQ-VAE and a user-conditioned prior.

In one run:

1. simulate 31 users x 50 images (128 x 128) with ``timetok doppler simulate``'s model,
   timed; split within each user 70/10/20 (train/val/test);
2. train the tokenizer, then the prior over its frozen codes (``timetok doppler train``'s
   stages), for the profile's epochs;
3. validate (``timetok doppler validate``'s pipeline) for each sampling method:
   ``timetok`` (the user prefix, temperature 1), ``timetok-cfg<s>`` (classifier-free
   guidance at each scale s of ``--guidance``) and ``unconditional`` (the null prefix for
   every image: what the user classifier scores without conditioning — the floor
   conditioning must lift);
4. reconstruction on the simulated test images and on the real PARRAD radar frames, by the
   simulated-data tokenizer (zero-shot) and by the same architecture trained on PARRAD's
   own training frames (``timetok-parrad``), beside the identity floor of a blurred copy.

Targets (the issue's): codebook usage >= 95 %, user accuracy on generated >= 0.9 x on real,
feature Fréchet distance <= 1.5 x the real train-vs-test floor, no memorised copies.
Writes ``benchmarks/results/<name>.{json,md}`` and the PNG grids beside them.
``--ceiling-only`` scores the tokenizer ceiling of an earlier run's folders alone
(``<name>_ceiling.{json,md}``). ``--tokenizer-only`` runs steps 1 and 2 without the prior
and scores the tokenizer's ceiling: the user classifier trained on real images, on the
reconstructions of the real test images; and, to tell lost identity from a shift in
texture, a classifier trained on the reconstructions of the training images
(``user_acc_rebuilt_trained``); it writes ``<name>_tokenizer.{json,md}``. ``--channels``
sets the tokenizer's channels (its code grid), ``--adversarial-weight`` and
``--adversarial-start`` and ``--adversarial-ramp`` its patch critic (weight 0: the pixel
loss alone);
``--tokenizer-from`` reuses a tokenizer trained by an earlier run and trains the prior
alone; ``--prior-from`` also reuses a generator trained over that tokenizer (e.g. a
``doppler_prior.py`` variant) and only validates it. ``--val-seeds N`` validates with N
seeds, each drawing its own user classifier and samples, and adds their mean and standard
deviation: one draw's accuracy ratio moves by up to 0.16 (doppler_notes.md, step 18).

    python benchmarks/doppler.py --profile cpu
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import resource
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# Epochs per stage (a machine under load trains as long, only slower) and, as a safety cap
# only, minutes; the CPU profile runs in about half an hour on 2 cores, the GPU profile is
# sized for one H100/H200 lease. The GPU profile's tokenizer keeps a 32 x 32 code grid,
# whose reconstructions keep the user identity a 16 x 16 grid loses (doppler*_tokenizer.md).
# The prior's batch is small: at a fixed time budget more, noisier steps lower its
# validation loss further (doppler_prior.md).
PROFILES = {
    "cpu": dict(size=128, tokenizer_epochs=20, prior_epochs=12, parrad_epochs=30, cap_min=20,
                channels=[32, 64, 128], d_model=192, n_layers=4, d_ff=768, batch=32, prior_batch=8,
                classifier_epochs=40, users=31, per_user=50, gen_batch=64),
    "gpu": dict(size=128, tokenizer_epochs=60, prior_epochs=60, parrad_epochs=60, cap_min=4,
                channels=[64, 128], d_model=384, n_layers=6, d_ff=1536, batch=64, prior_batch=16,
                classifier_epochs=60, users=31, per_user=50, gen_batch=512),
    "smoke": dict(size=32, tokenizer_epochs=2, prior_epochs=2, parrad_epochs=2, cap_min=1,
                  channels=[8, 16], d_model=32, n_layers=1, d_ff=64, batch=16, prior_batch=8,
                  classifier_epochs=2, users=4, per_user=10, gen_batch=64),
}
PUBLISHED = [("reference 002 (target)", "codebook_usage", 0.80)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--codebook-size", type=int, default=512)
    parser.add_argument("--guidance", default="2",
                        help="classifier-free guidance scales, comma-separated: one "
                             "timetok-cfg<s> method each")
    parser.add_argument("--parrad", default=str(Path(__file__).parents[2] / "shared/data"),
                        help="folder holding radar_parrad_sample/ (skipped when absent)")
    parser.add_argument("--runs", default="runs/bench-doppler")
    parser.add_argument("--name", default="doppler")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-seeds", type=int, default=1,
                        help="validate with this many seeds from --seed on (each draws its "
                             "own user classifier and samples) and report their mean and "
                             "standard deviation beside each seed's figures")
    parser.add_argument("--ceiling-only", action="store_true",
                        help="score the tokenizer ceiling of the runs in --runs, nothing else")
    parser.add_argument("--tokenizer-only", action="store_true",
                        help="simulate, train the tokenizer and score its ceiling; no prior")
    parser.add_argument("--channels", default=None,
                        help="the tokenizer's channels instead of the profile's, e.g. 32,64 "
                             "for a 32 x 32 code grid at 128 x 128")
    parser.add_argument("--tokenizer-epochs", type=int, default=None,
                        help="the tokenizer's epochs instead of the profile's")
    parser.add_argument("--prior-epochs", type=int, default=None,
                        help="the prior's epochs instead of the profile's (its learning rate "
                             "decays over them, or over --cap-min if that ends first)")
    parser.add_argument("--adversarial-weight", type=float, default=0.0,
                        help="train the tokenizer against a patch critic at this weight "
                             "(0: pixel loss only)")
    parser.add_argument("--adversarial-start", type=int, default=None,
                        help="the tokenizer's epoch at which its patch critic starts "
                             "(default: a third of its epochs)")
    parser.add_argument("--adversarial-ramp", type=float, default=0.0,
                        help="epochs over which the critic's weight rises to its full value "
                             "(0: at once)")
    parser.add_argument("--prior-batch", type=int, default=None,
                        help="the prior's batch size instead of the profile's")
    parser.add_argument("--no-grid-positions", action="store_true",
                        help="the prior without row and column embeddings")
    parser.add_argument("--user-prefix-only", action="store_true",
                        help="the prior takes the user as its prefix alone, not also added "
                             "to every code's input (doppler_prior_user.md)")
    parser.add_argument("--prior-dropout", type=float, default=0.1,
                        help="the prior's dropout on embeddings and residual branches")
    parser.add_argument("--code-noise", type=float, default=0.0,
                        help="share of the codes the prior reads in training replaced by "
                             "random ones (a regulariser; 0: none)")
    parser.add_argument("--amp", action="store_true",
                        help="train in mixed precision on the CPU too (bf16 autocast; about "
                             "1.5-2x faster where the CPU has AVX512-BF16); CUDA always does")
    parser.add_argument("--cap-min", type=float, default=None,
                        help="each training stage's cap in minutes instead of the profile's")
    parser.add_argument("--tokenizer-from", default=None,
                        help="a trained tokenizer folder (an earlier run's <runs>/tokenizer on "
                             "the same simulation and seed) to reuse instead of training one")
    parser.add_argument("--prior-from", default=None,
                        help="a generator folder trained over the --tokenizer-from tokenizer "
                             "to validate instead of training a prior")
    args = parser.parse_args()
    if args.prior_from and not args.tokenizer_from:
        parser.error("--prior-from needs --tokenizer-from, the tokenizer its prior was "
                     "trained over")
    if args.val_seeds < 1:
        parser.error(f"--val-seeds must be >= 1, got {args.val_seeds}")
    if args.tokenizer_only:  # its tables and figures go beside a full run's, not over them
        args.name += "_tokenizer"

    from timetok.core.console import quiet
    from timetok.core.report import machine

    quiet()
    profile = dict(PROFILES[args.profile])
    if args.channels:
        profile["channels"] = [int(c) for c in args.channels.split(",")]
    guidance = [float(s) for s in args.guidance.split(",")]  # before hours of training
    for key in ("tokenizer_epochs", "prior_epochs", "prior_batch", "cap_min"):
        if getattr(args, key) is not None:
            profile[key] = getattr(args, key)
    runs = Path(args.runs)
    command = "python benchmarks/doppler.py " + shlex.join(sys.argv[1:])
    where, started = machine(), time.perf_counter()
    device = "cuda" if "CPU" not in where else "cpu"
    profile["amp"] = device == "cuda" or args.amp
    profile["trains"] = not (args.prior_from or args.ceiling_only)
    rows: list[dict] = []  # (dataset, setting, method, metric, value)

    def add(dataset, method, metric, value, setting="-"):
        rows.append(dict(dataset=dataset, setting=setting, method=method, metric=metric,
                         value=value))
        print(f"{dataset:14s} {method:24s} {metric:20s} {value:.4f}", flush=True)

    seeds = list(range(args.seed, args.seed + args.val_seeds))

    def add_seeds(dataset, method, per_seed: list[dict[str, float]]):
        """Each seed's figures, and with several seeds their mean and sample standard
        deviation (as the other benchmarks give it)."""
        for seed, figures in zip(seeds, per_seed, strict=True):
            for metric, value in figures.items():
                add(dataset, method, metric, value, f"seed={seed}")
        if len(per_seed) > 1:
            for metric in per_seed[0]:
                values = [figures[metric] for figures in per_seed if metric in figures]
                add(dataset, method, metric, statistics.fmean(values), "mean")
                if len(values) > 1:
                    add(dataset, method, metric, statistics.stdev(values), "sd")

    if args.ceiling_only:
        add_seeds(f"simulated-{profile['users']}", "tokenizer-ceiling",
                  [ceiling(runs, seed) for seed in seeds])
        write(f"{args.name}_ceiling", rows, {}, where, command, profile)
        return 0
    sim, simulate_s = simulate(runs / "sim", profile, args.seed)
    n_images = profile["users"] * profile["per_user"]
    dataset = f"simulated-{profile['users']}"
    add(dataset, "simulator", "images_per_s", n_images / simulate_s)
    dm, tokenizer, timings = train_tokenizer(runs, sim, profile, args, device)
    images, users = dm.images("test")
    figures, recon = reconstruction(tokenizer, images, users)
    for metric in ("mse", "psnr", "codes_per_user_min", "codes_per_user_mean"):
        add(dataset, "timetok", f"recon_{metric}", figures[metric])
    train_images, train_users = dm.images("train")
    train_figures, train_recon = reconstruction(tokenizer, train_images, train_users)
    add(dataset, "timetok", "codebook_usage", train_figures["usage"])
    add(dataset, "timetok", "codebook_usage_test", figures["usage"])
    if not args.tokenizer_from:  # a reused tokenizer's figures stand beside the run that trained it
        grid(f"{args.name}_reconstructions.png", images, users, recon, "reconstruction")
        copy_figure(runs / "tokenizer" / "codebook_snapshots.png", f"{args.name}_codebook.png")
    if args.tokenizer_only:
        from timetok.doppler.evaluate import train_classifier

        classifiers = {name: train_classifier(fit, train_users,
                                              epochs=profile["classifier_epochs"],
                                              seed=args.seed, device=device)
                       for name, fit in (("real", train_images), ("rebuilt", train_recon))}
        figures = ceiling_figures(classifiers["real"], train_images, images, recon, users)
        figures["user_acc_rebuilt_trained"] = float(
            (classifiers["rebuilt"].predict(recon) == users).mean())
        for metric, value in figures.items():
            add(dataset, "tokenizer-ceiling", metric, value)
        timings["whole run s"] = time.perf_counter() - started
        write(args.name, rows, timings, where, command, profile)
        return 0
    if args.prior_from:
        shutil.rmtree(runs / "generator", ignore_errors=True)
        shutil.copytree(args.prior_from, runs / "generator")
        timings |= prior_figures(runs / "generator")
    else:
        timings |= train_prior_stage(runs, dm, tokenizer, profile, args, device)
    shutil.rmtree(runs / "classifier", ignore_errors=True)  # one per run and seed, anew

    for method, options in sampling_methods(guidance).items():
        add_seeds(dataset, method, [report_metrics(validate(runs, method, options, profile,
                                                            device, seed)) for seed in seeds])
        if method == "timetok":
            copy_figure(runs / "validation" / f"seed{args.seed}" / method / "grid.png",
                        f"{args.name}_grid.png")

    add_seeds(dataset, "tokenizer-ceiling", [ceiling(runs, seed) for seed in seeds])

    parrad = Path(args.parrad) / "radar_parrad_sample"
    if parrad.is_dir():
        for method, metrics in parrad_reconstruction(parrad, runs, tokenizer, profile, args,
                                                     device).items():
            for metric, value in metrics.items():
                add("parrad", method, metric, value)
    else:
        print(f"skipped PARRAD: {parrad} not found", flush=True)
    timings["whole run s"] = time.perf_counter() - started
    write(args.name, rows, timings, where, command, profile)
    return 0


def simulate(out: Path, profile: dict, seed: int) -> tuple[Path, float]:
    from timetok.core.utils import cpu_cores
    from timetok.doppler.simulator import RadarConfig, simulate_dataset

    radar = dataclasses.replace(RadarConfig(), size=profile["size"])
    started = time.perf_counter()
    simulate_dataset(out, profile["users"], profile["per_user"], radar, seed, progress=False,
                     overwrite=True, workers=cpu_cores())
    return out, time.perf_counter() - started


def run_options(epochs: int, profile: dict, seed: int, device: str):
    from timetok.core.train.runner import RunOptions

    return RunOptions(n_epochs=epochs, max_time=profile["cap_min"], seed=seed, progress=False,
                      checkpoint_every=10_000, accelerator="gpu" if device == "cuda" else "cpu",
                      devices="1", amp=profile["amp"])


def train_tokenizer(runs: Path, sim: Path, profile: dict, args, device: str):
    from timetok.doppler.model import SpectrogramTokenizer, SpectrogramTokenizerConfig
    from timetok.doppler.recipe import SpectrogramDataModule, train_spectrogram_tokenizer

    dm = SpectrogramDataModule("image-folder", str(sim), image_size=profile["size"],
                               val=0.1, test=0.2, seed=args.seed, batch_size=profile["batch"])
    dm.load()
    timings = {}
    if args.tokenizer_from:
        shutil.rmtree(runs / "tokenizer", ignore_errors=True)
        shutil.copytree(args.tokenizer_from, runs / "tokenizer")
    else:
        config = SpectrogramTokenizerConfig(image_size=profile["size"],
                                            channels=profile["channels"],
                                            num_embeddings=args.codebook_size)
        _, summary = train_spectrogram_tokenizer(
            config, dm, runs / "tokenizer", run_options(profile["tokenizer_epochs"], profile,
                                                        args.seed, device),
            adversarial_weight=args.adversarial_weight, adversarial_start=args.adversarial_start,
            adversarial_ramp=args.adversarial_ramp)
        timings["tokenizer s/epoch"] = summary["wall_s"] / max(summary["epochs"], 1)
        timings["tokenizer epochs"] = summary["epochs"]
    tokenizer = SpectrogramTokenizer.from_pretrained(runs / "tokenizer", device)
    return dm, tokenizer, timings


def train_prior_stage(runs: Path, dm, tokenizer, profile: dict, args, device: str) -> dict:
    from timetok.doppler.recipe import train_prior

    timings = {}
    sizes = dict(d_model=profile["d_model"], n_layers=profile["n_layers"], n_heads=8,
                 d_ff=profile["d_ff"], dropout=args.prior_dropout, condition_dropout=0.1,
                 code_noise=args.code_noise,
                 grid_positions=not args.no_grid_positions,
                 user_every_code=not args.user_prefix_only)
    _, summary = train_prior(tokenizer, dm, runs / "generator",
                             run_options(profile["prior_epochs"], profile, args.seed, device),
                             sizes, batch_size=profile["prior_batch"])
    timings["prior s/epoch"] = summary["wall_s"] / max(summary["epochs"], 1)
    timings["prior epochs"] = summary["epochs"]
    return timings | prior_figures(runs / "generator")


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


def reconstruction(tokenizer, images, users):
    from timetok.doppler.pipeline import reconstruction_figures

    return reconstruction_figures(tokenizer, images, users)


def sampling_methods(guidance: list[float]) -> dict[str, dict]:
    return {"timetok": {},
            **{f"timetok-cfg{s:g}": {"guidance_scale": s} for s in guidance},
            "unconditional": {"unconditional": True}}


def validate(runs: Path, method: str, options: dict, profile: dict, device: str, seed: int
             ) -> dict:
    from timetok.doppler.pipeline import validate_generator

    out = runs / "validation" / f"seed{seed}" / method
    return validate_generator(runs / "generator", out, device=device, seed=seed,
                              classifier_epochs=profile["classifier_epochs"],
                              classifier_dir=runs / "classifier" / f"seed{seed}",
                              batch_size=profile["gen_batch"], **options)


def ceiling(runs: Path, seed: int) -> dict[str, float]:
    """The run's classifier of ``seed`` on the tokenizer's reconstructions of the real test
    images."""
    from timetok.doppler.evaluate import UserClassifier
    from timetok.doppler.model import GeneratorModel
    from timetok.doppler.pipeline import real_splits

    tokenizer = GeneratorModel.from_pretrained(runs / "generator").tokenizer
    splits = real_splits(runs / "generator")
    (train, _), (test, users) = splits["train"], splits["test"]
    _, recon = reconstruction(tokenizer, test, users)
    return ceiling_figures(UserClassifier.load(runs / "classifier" / f"seed{seed}"), train, test,
                           recon, users)


def ceiling_figures(classifier, train, test, recon, users) -> dict[str, float]:
    """A classifier trained on real images, on the reconstructions ``recon`` of the real
    ``test`` images: accuracy and Fréchet distance to the real test images, against the
    real figures (the floor: real train against real test)."""
    import numpy as np

    from timetok.doppler.evaluate import frechet_distance

    real = float((classifier.predict(test) == users).mean())
    rebuilt = float((classifier.predict(recon) == users).mean())
    features = [classifier.features(a).astype(np.float64) for a in (train, test, recon)]
    floor = frechet_distance(features[0], features[1])
    fd = frechet_distance(features[2], features[1])
    return {"user_acc_real": real, "user_acc_generated": rebuilt,
            "user_acc_ratio": rebuilt / real if real else float("nan"), "fd_generated": fd,
            "fd_floor": floor, "fd_ratio": fd / floor if floor else float("nan")}


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


def parrad_reconstruction(folder: Path, runs: Path, tokenizer, profile: dict, args,
                          device: str) -> dict[str, dict]:
    """PARRAD test frames rebuilt by the simulated-data tokenizer and by one trained on
    PARRAD's own training frames."""
    from timetok.doppler.recipe import SpectrogramDataModule, train_spectrogram_tokenizer

    dm = SpectrogramDataModule("parrad", data_dir=str(folder.parent),
                               image_size=profile["size"], seed=args.seed,
                               batch_size=min(profile["batch"], 16))
    dm.load()
    images, users = dm.images("test")
    out = {"timetok-simulated": reconstruction(tokenizer, images, users)[0]}
    config = dataclasses.replace(tokenizer.config)
    module, _ = train_spectrogram_tokenizer(
        config, dm, runs / "parrad-tokenizer", run_options(profile["parrad_epochs"], profile,
                                                           args.seed, device),
        adversarial_weight=args.adversarial_weight, adversarial_start=args.adversarial_start,
        adversarial_ramp=args.adversarial_ramp)
    own = module.model.to(device).eval()
    figures, recon = reconstruction(own, images, users)
    out["timetok-parrad"] = figures
    grid(f"{args.name}_parrad_reconstructions.png", images, users, recon, "reconstruction")
    keep = ("mse", "psnr", "usage")
    return {method: {f"recon_{k}" if k != "usage" else "codebook_usage": v
                     for k, v in figures.items() if k in keep}
            for method, figures in out.items()}


def grid(name: str, images, users, other, label: str) -> None:
    from timetok.doppler.evaluate import pick_users, plot_grid

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
                "validating models trained by an earlier run")
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
