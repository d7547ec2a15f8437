"""``timetok doppler``: micro-Doppler spectrogram generation (system 3): simulate, train,
generate, evaluate (``validate``: its old name, hidden).

Each command parses its flags (and ``--config FILE``) into the recipe's config
(:mod:`timetok.doppler.config`, where the defaults live) and calls the library: the recipes
:func:`timetok.doppler.recipe.train` and :func:`timetok.doppler.evaluate.evaluate`, the
pipeline :class:`timetok.doppler.pipeline.SpectrogramGenerator`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click

from timetok.core.cli_options import (
    FiniteFloat,
    OrderedGroup,
    check_writable,
    compose,
    device_option,
    hidden_alias,
    json_option,
    optimiser_options,
    option,
    pass_settings,
    print_summary,
    run_options,
    threads_option,
    writing,
)
from timetok.core.errors import ConfigError
from timetok.core.paths import check_apart, read_paths
from timetok.doppler.config import STAGES, EvaluateConfig, TrainConfig

TRAIN, EVALUATE = TrainConfig.defaults(), EvaluateConfig.defaults()


@click.group(cls=OrderedGroup)
def doppler() -> None:
    """Micro-Doppler spectrograms: a 2-D VQ-VAE and a user-conditioned prior over its codes."""


@doppler.command()
@option("--users", "n_users", type=click.IntRange(min=1), default=31, show_default=True,
        help="Simulated people.")
@option("--per-user", type=click.IntRange(min=1), default=50, show_default=True,
        help="Images per person.")
@option("--size", type=click.IntRange(min=16), default=128, show_default=True,
        help="Image side in pixels (rows: Doppler, columns: time).")
@option("--carrier-ghz", type=FiniteFloat(min=0, min_open=True), default=24.0,
        show_default=True, help="Radar carrier frequency.")
@option("--prf", "prf_hz", type=FiniteFloat(min=0, min_open=True), default=None,
        help="Pulse repetition frequency in Hz [default: the simulator's, fast enough for "
             "the feet].")
@option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@option("--out", type=click.Path(file_okay=False), required=True,
        help="Folder to write <user>/<n>.png and .npy and users.json into.")
@option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
@option("--workers", type=click.IntRange(min=1), default=None,
        help="Processes simulating users in parallel; the images do not depend on it "
             "[default: one per CPU core].")
@option("--progress/--no-progress", default=True, show_default=True)
def simulate(n_users, per_user, size, carrier_ghz, prf_hz, seed, out, overwrite, workers,
             progress):
    """Simulate people walking towards a radar (Boulic's gait model, point scatterers, an
    STFT): one folder of spectrograms per person, small differences between people."""
    from timetok.core.utils import cpu_cores
    from timetok.doppler.simulator import RadarConfig, simulate_dataset

    check_writable(out, "--out")
    radar = dataclasses.replace(RadarConfig(), carrier_hz=carrier_ghz * 1e9, size=size,
                                **({"prf_hz": prf_hz} if prf_hz else {}))
    started = time.perf_counter()
    with writing(out, "--out"):
        simulate_dataset(out, n_users=n_users, per_user=per_user, radar=radar, seed=seed,
                         progress=progress, overwrite=overwrite,
                         workers=workers or cpu_cores())
    seconds = time.perf_counter() - started
    total = n_users * per_user
    click.echo(f"simulated {total:,} spectrograms of {n_users} users ({size}x{size}) in "
               f"{seconds:.1f} s ({total / seconds:,.0f} images/s) into {out}")



def _data_options(func):
    return compose(
        option("--data-path", "--data", "data_path", type=click.Path(),
               default=TRAIN["data_path"],
               help="A folder of <user>/<image> files (png, jpg or npy), e.g. from "
                    "'timetok doppler simulate'."),
        option("--dataset", default=TRAIN["dataset"], show_default=True,
               help="A registered image dataset (timetok data list), or image-folder with "
                    "--data."),
        option("--data-dir", type=click.Path(file_okay=False), default=TRAIN["data_dir"],
               help="Folder holding a registered dataset's files."),
        option("--image-size", type=click.IntRange(min=16), default=TRAIN["image_size"],
               show_default=True, help="Images are resized to this side."),
        option("--resize/--no-resize", default=TRAIN["resize"], show_default=True,
               help="Resize images of another size, or refuse them."),
        option("--val-share", type=FiniteFloat(0, 1, max_open=True),
               default=TRAIN["val_share"], show_default=True,
               help="Share of each user's images held out for validation."),
        option("--test-share", type=FiniteFloat(0, 1, max_open=True),
               default=TRAIN["test_share"], show_default=True,
               help="Share of each user's images held out for testing."),
    )(func)


def _tokenizer_options(func):
    return compose(
        option("--channels", default=",".join(map(str, TRAIN["channels"])), show_default=True,
               help="Encoder widths per resolution; each halves the image (2: 128 -> a 32x32 "
                    "grid, whose reconstructions keep a user's identity; 3: a 16x16 grid "
                    "loses most)."),
        option("--n-res-layers", type=click.IntRange(min=0), default=TRAIN["n_res_layers"],
               show_default=True),
        option("--embedding-dim", type=click.IntRange(min=1), default=TRAIN["embedding_dim"],
               show_default=True),
        option("--codebook-size", type=click.IntRange(min=2), default=TRAIN["codebook_size"],
               show_default=True),
        option("--quantizer", type=click.Choice(["vq", "fsq"]), default=TRAIN["quantizer"],
               show_default=True),
        option("--decay", type=FiniteFloat(0, 1, min_open=True, max_open=True),
               default=TRAIN["decay"], show_default=True, help="EMA decay of the codebook."),
        option("--dead-code-threshold", type=FiniteFloat(min=0),
               default=TRAIN["dead_code_threshold"], show_default=True,
               help="Re-seed codes whose EMA usage falls below this (0: never)."),
        option("--tokenizer-epochs", type=click.IntRange(min=1),
               default=TRAIN["tokenizer_epochs"], show_default=True),
        option("--tokenizer-lr", type=FiniteFloat(min=0, min_open=True),
               default=TRAIN["tokenizer_lr"], show_default=True),
        option("--tokenizer-weight-decay", type=FiniteFloat(min=0),
               default=TRAIN["tokenizer_weight_decay"],
               help="The tokenizer's weight decay [default: --weight-decay]."),
        option("--adversarial-weight", type=FiniteFloat(min=0),
               default=TRAIN["adversarial_weight"], show_default=True,
               help="Also train the tokenizer to fool a patch critic, at this weight against "
                    "the pixel loss (sharper reconstructions; 0: pixel loss only; 0.5 is a "
                    "good start, 2 unsettles training)."),
        option("--adversarial-start", type=click.IntRange(min=0),
               default=TRAIN["adversarial_start"],
               help="The tokenizer epoch at which the patch critic starts [default: a third "
                    "of --tokenizer-epochs]."),
        option("--adversarial-ramp", type=FiniteFloat(min=0),
               default=TRAIN["adversarial_ramp"], show_default=True,
               help="Epochs over which the critic's weight rises from 0 to "
                    "--adversarial-weight once it starts (0: at once; a ramp eases its start "
                    "on a small tokenizer)."),
    )(func)


def _prior_options(func):
    return compose(
        option("--tokenizer-from", type=click.Path(file_okay=False),
               default=TRAIN["tokenizer_from"],
               help="A trained tokenizer folder to train the prior over [default: "
                    "SAVE_PATH/tokenizer]."),
        option("--d-model", type=click.IntRange(min=1), default=TRAIN["d_model"],
               show_default=True, help="Prior width."),
        option("--n-layers", type=click.IntRange(min=1), default=TRAIN["n_layers"],
               show_default=True),
        option("--n-heads", type=click.IntRange(min=1), default=TRAIN["n_heads"],
               show_default=True),
        option("--d-ff", type=click.IntRange(min=1), default=TRAIN["d_ff"], show_default=True),
        option("--dropout", type=FiniteFloat(0, 1, max_open=True),
               default=TRAIN["dropout"], show_default=True),
        option("--condition-dropout", type=FiniteFloat(0, 1, max_open=True),
               default=TRAIN["condition_dropout"], show_default=True,
               help="Share of training images seen without their user (for "
                    "--guidance-scale)."),
        option("--code-noise", type=FiniteFloat(0, 1, max_open=True),
               default=TRAIN["code_noise"], show_default=True,
               help="Share of the codes the prior reads in training replaced by random ones "
                    "(a regulariser for small data; the codes it predicts stay true)."),
        option("--grid-positions/--no-grid-positions", default=TRAIN["grid_positions"],
               show_default=True,
               help="Tell the prior each code's row and column on the grid, besides its "
                    "place in the sequence."),
        option("--user-every-code/--user-prefix-only", default=TRAIN["user_every_code"],
               show_default=True,
               help="Add the user's embedding to every code's input too, not only as the "
                    "prefix (a prefix alone is easily ignored)."),
        option("--prior-epochs", type=click.IntRange(min=1), default=TRAIN["prior_epochs"],
               show_default=True),
        option("--prior-batch-size", type=click.IntRange(min=1),
               default=TRAIN["prior_batch_size"],
               help="The prior's batch size [default: --batch-size]."),
    )(func)


@doppler.command()
@_data_options
@option("--stage", type=click.Choice(STAGES), default=TRAIN["stage"], show_default=True,
        help="Train the tokenizer, the prior (over a trained tokenizer in SAVE_PATH/"
             "tokenizer or --tokenizer-from), or both in turn.")
@_tokenizer_options
@_prior_options
@optimiser_options(batch_size=TRAIN["batch_size"], weight_decay=TRAIN["weight_decay"],
                   warmup_steps=TRAIN["warmup_steps"], lr=TRAIN["lr"])
@option("--save-path", type=click.Path(file_okay=False), default=TRAIN["save_path"],
        show_default=True,
        help="Run folder: the tokenizer in SAVE_PATH/tokenizer, the generator in "
             "SAVE_PATH/generator.")
@run_options
@json_option
@pass_settings
def train(**s) -> None:
    """Train the spectrogram tokenizer (2-D VQ-VAE), then the user-conditioned prior over
    its frozen codes. --lr is the prior's (--tokenizer-lr the tokenizer's); --batch-size and
    the run options apply to both stages, unless --prior-batch-size sets the prior's;
    --max-time caps each stage. --config configs/doppler/grid32-cpu.yaml trains the
    benchmark's generator."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.doppler.recipe import restarts_line
    from timetok.doppler.recipe import train as run

    config = TrainConfig.from_settings(s)
    save_path = Path(config.save_path)
    check_writable(save_path, "--save-path")
    with writing(save_path, "--save-path"):
        summaries = run(config)
    if rank_zero_only.rank != 0:
        return
    first = next(iter(summaries.values()))
    if not s["as_json"]:
        splits = "/".join(str(first["images"][k]) for k in ("train", "val", "test"))
        click.echo(f"{sum(first['images'].values()):,} images of {first['users']} users "
                   f"({config.image_size}x{config.image_size}); train/val/test {splits}")
    if "tokenizer" in summaries:
        summary = summaries["tokenizer"]
        print_summary(summary, save_path / "tokenizer", s["as_json"], [restarts_line(
            summary["restarts"], summary["global_step"], summary["codebook_size"])])
    if "prior" in summaries:
        print_summary(summaries["prior"], save_path / "generator", s["as_json"])
        if not s["as_json"]:
            click.echo(f"generate with: timetok doppler generate --model {save_path} --users 0 "
                       "--samples 10 --out generated")


def sampling_options(func):
    return compose(
        option("--temperature", type=FiniteFloat(min=0), default=EVALUATE["temperature"],
               show_default=True, help="0 decodes greedily."),
        option("--top-k", type=int, default=EVALUATE["top_k"],
               help="Sample among the k likeliest codes."),
        option("--top-p", type=FiniteFloat(), default=EVALUATE["top_p"],
               help="Sample among the likeliest codes whose probability reaches p, in (0, 1]."),
        option("--guidance-scale", type=FiniteFloat(min=0),
               default=EVALUATE["guidance_scale"],
               help="Classifier-free guidance: > 1 pushes towards the user [default: off]."),
        option("--no-cache", "no_cache", is_flag=True,
               help="Recompute every step instead of reusing keys and values (slower, same "
                    "result)."),
        option("--seed", type=click.IntRange(0, 2**32 - 1), default=EVALUATE["seed"],
               show_default=True),
        option("--batch-size", type=click.IntRange(min=1), default=EVALUATE["batch_size"],
               show_default=True),
        device_option,
        threads_option,
    )(func)


def write_images(out: Path, images, users: list[str]) -> None:
    """``out/<user>/<n>.png`` and ``.npy``, the simulator's layout, written atomically."""
    from timetok.core.data.images import save_image
    from timetok.core.utils import atomic_folder

    with atomic_folder(out) as tmp:
        counters: dict[str, int] = {}
        for image, user in zip(images, users, strict=True):
            n = counters[user] = counters.get(user, -1) + 1
            (tmp / user).mkdir(exist_ok=True)
            save_image(tmp / user / str(n), image)


@doppler.command()
@option("--model", "model_dir", type=click.Path(), required=True,
        help="A generator folder, or the --save-path of 'timetok doppler train'.")
@option("--users", default=None,
        help="User ids or names, comma-separated [default: every user].")
@option("--samples", type=click.IntRange(min=1), default=10, show_default=True,
        help="Images per user.")
@sampling_options
@option("--out", type=click.Path(file_okay=False), required=True,
        help="Folder to write <user>/<n>.png and .npy into.")
@option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
def generate(model_dir, users, samples, temperature, top_k, top_p, guidance_scale, no_cache,
             seed, batch_size, device, threads, out, overwrite):
    """Sample spectrograms of chosen users: codes from the prior, images from the decoder."""
    from timetok.doppler.pipeline import SpectrogramGenerator

    out = Path(out)
    check_apart(out, "out", {"model_dir": model_dir})
    check_writable(out, "--out")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out} is not empty; pass --overwrite to replace it or another "
                              "--out")
        if foreign := _not_generated(out):
            raise ConfigError(f"{out} holds {foreign}, which 'doppler generate' does not write; "
                              "--overwrite replaces only an earlier generate output: choose "
                              "another --out")
    generator = SpectrogramGenerator.from_pretrained(model_dir, device)
    chosen = generator.users if users is None else [
        part.strip() for part in users.split(",") if part.strip()]
    ids = generator.model.user_ids(chosen).tolist()
    started = time.perf_counter()
    images = generator.generate(ids, samples, guidance=guidance_scale, temperature=temperature,
                                top_k=top_k, top_p=top_p, seed=seed, batch_size=batch_size,
                                use_cache=not no_cache)
    seconds = time.perf_counter() - started
    names = [generator.users[i] for i in ids for _ in range(samples)]
    with writing(out, "--out"):
        write_images(out, images, names)
    click.echo(f"generated {len(images):,} images of {len(ids)} users in {seconds:.1f} s "
               f"({len(images) / seconds:,.1f} images/s on {generator.device}) into {out}")


def _not_generated(folder: Path) -> str | None:
    """The first entry of ``folder`` that a generate output (``<user>/<n>.png`` and ``.npy``)
    would not hold, or None."""
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir():
            return entry.name
        for item in sorted(entry.iterdir()):
            if not item.is_file() or item.suffix not in (".png", ".npy"):
                return f"{entry.name}/{item.name}"
    return None


@doppler.command()
@option("--model", type=click.Path(), default=EVALUATE["model"],
        help="A generator folder, or the --save-path of 'timetok doppler train' (required, "
             "here or in --config).")
@option("--data-path", "--data", "data_path", type=click.Path(), default=EVALUATE["data_path"],
        help="The real images' folder [default: the one the model was trained on].")
@option("--data-dir", type=click.Path(file_okay=False), default=EVALUATE["data_dir"],
        help="Folder holding a registered dataset's files (a model trained on one).")
@option("--generated", type=click.Path(file_okay=False), default=EVALUATE["generated"],
        help="A folder from 'timetok doppler generate' to evaluate [default: sample anew].")
@option("--samples", type=click.IntRange(min=2), default=EVALUATE["samples"],
        help="Images per user to generate [default: the users' real test images, at least "
             "10].")
@option("--unconditional", is_flag=True, default=EVALUATE["unconditional"],
        help="Sample every image without its user (each still judged as its intended "
             "user's): the floor that conditioning must lift.")
@sampling_options
@option("--classifier-epochs", type=click.IntRange(min=1),
        default=EVALUATE["classifier_epochs"], show_default=True,
        help="Epochs of the user-ID classifier trained on the real training images.")
@option("--classifier", type=click.Path(file_okay=False), default=EVALUATE["classifier"],
        help="A user classifier folder to judge by, trained and saved there when it holds "
             "none (several evaluations then share one judge) [default: train one into "
             "OUT/classifier].")
@option("--out", type=click.Path(file_okay=False), default=EVALUATE["out"],
        help="Report folder [default: MODEL/evaluation].")
@option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
        help="YAML file of settings; flags given on the command line win.")
@option("--progress/--no-progress", default=EVALUATE["progress"], show_default=True)
@json_option
@pass_settings
def evaluate(**s) -> None:
    """Judge generated images against real held-out ones: a user-ID classifier's accuracy
    on both, Fréchet distance in its features beside the real-vs-real floor, diversity,
    memorisation, codebook usage; writes report.md, report.json and grid.png."""
    from timetok.doppler.evaluate import evaluate as run

    quiet = {"progress": s["progress"] and not s["as_json"]}  # stdout holds the JSON alone
    config = EvaluateConfig.from_settings(s, **quiet)
    out = config.out_dir()
    check_apart(out, "out", read_paths(s), may_lie_inside=("model",))
    check_writable(out, "--out")
    with writing(out, "--out"):
        report = run(config)
    if s["as_json"]:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo((out / "report.md").read_text())
    classifier = Path(config.classifier) if config.classifier else out / "classifier"
    click.echo(f"wrote {out / 'report.md'}, {out / 'report.json'} and {out / 'grid.png'} (real "
               f"and generated images of up to 8 users); the user classifier is in "
               f"{classifier}")


hidden_alias(doppler, evaluate, "validate")  # the command's name before 'evaluate'

