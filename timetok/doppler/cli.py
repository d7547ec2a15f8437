"""``timetok doppler``: micro-Doppler spectrogram generation (system 3): simulate, train,
generate, validate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from timetok.core.cli_options import (
    OrderedGroup,
    check_new_run,
    check_writable,
    compose,
    device_option,
    int_list,
    json_option,
    optimiser_options,
    option,
    pass_settings,
    print_summary,
    resolve_device,
    run_options,
    run_options_from,
    saved_settings,
    writing,
)
from timetok.core.errors import ConfigError

STAGES = ("both", "tokenizer", "prior")


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
@option("--carrier-ghz", type=click.FloatRange(min=0, min_open=True), default=24.0,
        show_default=True, help="Radar carrier frequency.")
@option("--prf", "prf_hz", type=click.FloatRange(min=0, min_open=True), default=None,
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
    import dataclasses

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
        option("--data-path", "--data", "data_path", type=click.Path(), default=None,
               help="A folder of <user>/<image> files (png, jpg or npy), e.g. from "
                    "'timetok doppler simulate'."),
        option("--dataset", default="image-folder", show_default=True,
               help="A registered image dataset (timetok data list), or image-folder with "
                    "--data."),
        option("--data-dir", type=click.Path(file_okay=False), default=None,
               help="Folder holding a registered dataset's files."),
        option("--image-size", type=click.IntRange(min=16), default=128, show_default=True,
               help="Images are resized to this side."),
        option("--resize/--no-resize", default=True, show_default=True,
               help="Resize images of another size, or refuse them."),
        option("--val-share", type=click.FloatRange(0, 1, max_open=True), default=0.1,
               show_default=True, help="Share of each user's images held out for validation."),
        option("--test-share", type=click.FloatRange(0, 1, max_open=True), default=0.2,
               show_default=True, help="Share of each user's images held out for testing."),
    )(func)


def _datamodule(s: dict, batch_size: int):
    from timetok.doppler.recipe import SpectrogramDataModule

    if s["dataset"] == "image-folder" and not s["data_path"]:
        raise ConfigError("--dataset image-folder reads the folder given by --data; pass "
                          "--data DIR (e.g. the --out of 'timetok doppler simulate')")
    dm = SpectrogramDataModule(s["dataset"], s["data_path"], s["data_dir"], s["image_size"],
                               s["resize"], s["val_share"], s["test_share"], s["seed"],
                               batch_size, s["num_workers"])
    data = dm.load()
    sizes = "/".join(str(len(dm.index[k])) for k in ("train", "val", "test"))
    click.echo(f"{len(data.images):,} images of {len(data.user_names)} users "
               f"({s['image_size']}x{s['image_size']}); train/val/test {sizes}")
    return dm


@doppler.command()
@_data_options
@option("--stage", type=click.Choice(STAGES), default="both", show_default=True,
        help="Train the tokenizer, the prior (over a trained tokenizer in SAVE_PATH/"
             "tokenizer), or both in turn.")
@option("--channels", default="32,64", show_default=True,
        help="Encoder widths per resolution; each halves the image (2: 128 -> a 32x32 grid, "
             "whose reconstructions keep a user's identity; 3: a 16x16 grid loses most).")
@option("--n-res-layers", type=click.IntRange(min=0), default=1, show_default=True)
@option("--embedding-dim", type=click.IntRange(min=1), default=64, show_default=True)
@option("--codebook-size", type=click.IntRange(min=2), default=512, show_default=True)
@option("--quantizer", type=click.Choice(["vq", "fsq"]), default="vq", show_default=True)
@option("--decay", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9,
        show_default=True, help="EMA decay of the codebook.")
@option("--dead-code-threshold", type=click.FloatRange(min=0), default=2.0,
        show_default=True, help="Re-seed codes whose EMA usage falls below this (0: never).")
@option("--tokenizer-epochs", type=click.IntRange(min=1), default=30, show_default=True)
@option("--tokenizer-lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
        show_default=True)
@option("--adversarial-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
        help="Also train the tokenizer to fool a patch critic, at this weight against the "
             "pixel loss (sharper reconstructions; 0: pixel loss only; 0.5 is a good start, "
             "2 unsettles training).")
@option("--adversarial-start", type=click.IntRange(min=0), default=None,
        help="The tokenizer epoch at which the patch critic starts [default: a third of "
             "--tokenizer-epochs].")
@option("--adversarial-ramp", type=click.FloatRange(min=0), default=0.0, show_default=True,
        help="Epochs over which the critic's weight rises from 0 to --adversarial-weight "
             "once it starts (0: at once; a ramp eases its start on a small tokenizer).")
@option("--d-model", type=click.IntRange(min=1), default=256, show_default=True,
        help="Prior width.")
@option("--n-layers", type=click.IntRange(min=1), default=4, show_default=True)
@option("--n-heads", type=click.IntRange(min=1), default=8, show_default=True)
@option("--d-ff", type=click.IntRange(min=1), default=1024, show_default=True)
@option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1,
        show_default=True)
@option("--condition-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1,
        show_default=True,
        help="Share of training images seen without their user (for --guidance-scale).")
@option("--code-noise", type=click.FloatRange(0, 1, max_open=True), default=0.0,
        show_default=True,
        help="Share of the codes the prior reads in training replaced by random ones (a "
             "regulariser for small data; the codes it predicts stay true).")
@option("--grid-positions/--no-grid-positions", default=True, show_default=True,
        help="Tell the prior each code's row and column on the grid, besides its place in "
             "the sequence.")
@option("--user-every-code/--user-prefix-only", default=True, show_default=True,
        help="Add the user's embedding to every code's input too, not only as the prefix "
             "(a prefix alone is easily ignored).")
@option("--prior-epochs", type=click.IntRange(min=1), default=40, show_default=True)
@option("--prior-batch-size", type=click.IntRange(min=1), default=None,
        help="The prior's batch size [default: --batch-size].")
@optimiser_options(batch_size=32, lr=5e-4)
@option("--save-path", type=click.Path(file_okay=False), default="runs/doppler",
        show_default=True,
        help="Run folder: the tokenizer in SAVE_PATH/tokenizer, the generator in "
             "SAVE_PATH/generator.")
@run_options
@json_option
@pass_settings
def train(**s) -> None:
    """Train the spectrogram tokenizer (2-D VQ-VAE), then the user-conditioned prior over
    its frozen codes. --lr is the prior's (--tokenizer-lr the tokenizer's); --batch-size and
    the run options apply to both stages, unless --prior-batch-size sets the prior's."""
    import dataclasses

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.doppler.model import SpectrogramTokenizer, SpectrogramTokenizerConfig
    from timetok.doppler.recipe import train_prior, train_spectrogram_tokenizer

    if s["n_epochs"] is not None:
        raise ConfigError("doppler train takes --tokenizer-epochs and --prior-epochs, not "
                          "--n-epochs")
    if s["resume"]:
        raise ConfigError("doppler train cannot resume; run the unfinished --stage again")
    if (s["adversarial_weight"] and s["adversarial_start"] is not None
            and s["adversarial_start"] >= s["tokenizer_epochs"]):
        raise ConfigError(f"--adversarial-start {s['adversarial_start']} is past the last of "
                          f"{s['tokenizer_epochs']} --tokenizer-epochs, so the critic would "
                          "never train; start it earlier")
    save_path = Path(s["save_path"])
    check_writable(save_path, "--save-path")
    tok_dir, gen_dir = save_path / "tokenizer", save_path / "generator"
    stages = ["tokenizer", "prior"] if s["stage"] == "both" else [s["stage"]]
    for stage, folder in (("tokenizer", tok_dir), ("prior", gen_dir)):
        if stage in stages:
            check_new_run(folder, s)
    config = None
    if "tokenizer" in stages:
        config = SpectrogramTokenizerConfig(
            image_size=s["image_size"], channels=int_list(s["channels"], "--channels"),
            n_res_layers=s["n_res_layers"], embedding_dim=s["embedding_dim"],
            num_embeddings=s["codebook_size"], quantizer=s["quantizer"], decay=s["decay"],
            dead_code_threshold=s["dead_code_threshold"])
    elif not (tok_dir / "config.json").is_file():
        raise ConfigError(f"--stage prior needs a trained tokenizer in {tok_dir}; run --stage "
                          "tokenizer (or both) first")
    dm = _datamodule(s, s["batch_size"])
    summaries = {}
    with writing(save_path, "--save-path"):
        if config is not None:
            options = dataclasses.replace(run_options_from(s), n_epochs=s["tokenizer_epochs"])
            module, summary = train_spectrogram_tokenizer(
                config, dm, tok_dir, options, lr=s["tokenizer_lr"],
                weight_decay=s["weight_decay"], warmup_steps=s["warmup_steps"],
                settings=saved_settings(s) | {"stage": "tokenizer"},
                adversarial_weight=s["adversarial_weight"],
                adversarial_start=s["adversarial_start"],
                adversarial_ramp=s["adversarial_ramp"])
            summaries["tokenizer"] = summary
            print_summary(summary, tok_dir, s["as_json"], module.summary_lines(summary))
        if "prior" in stages:
            tokenizer = SpectrogramTokenizer.from_pretrained(tok_dir)
            if tokenizer.config.image_size != s["image_size"]:
                raise ConfigError(f"the tokenizer in {tok_dir} reads {tokenizer.config.image_size}"
                                  f" px images; pass --image-size {tokenizer.config.image_size}")
            sizes = {k: s[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "dropout",
                                       "condition_dropout", "grid_positions",
                                       "user_every_code", "code_noise")}
            options = dataclasses.replace(run_options_from(s), n_epochs=s["prior_epochs"])
            module, summary = train_prior(
                tokenizer, dm, gen_dir, options, sizes, lr=s["lr"],
                weight_decay=s["weight_decay"], warmup_steps=s["warmup_steps"],
                settings=saved_settings(s) | {"stage": "prior"},
                batch_size=s["prior_batch_size"])
            summaries["prior"] = summary
            print_summary(summary, gen_dir, s["as_json"])
    if rank_zero_only.rank == 0 and not s["as_json"] and "prior" in stages:
        click.echo(f"generate with: timetok doppler generate --model {save_path} --users 0 "
                   "--samples 10 --out generated")


def resolve_generator(path: str | Path) -> Path:
    """A generator folder, or the --save-path of 'doppler train' holding one."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path / "generator" / "config.json").is_file():
        return path / "generator"
    return path


def sampling_options(func):
    return compose(
        option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
               help="0 decodes greedily."),
        option("--top-k", type=int, default=None, help="Sample among the k likeliest codes."),
        option("--top-p", type=float, default=None,
               help="Sample among the likeliest codes whose probability reaches p, in (0, 1]."),
        option("--guidance-scale", type=click.FloatRange(min=0), default=None,
               help="Classifier-free guidance: > 1 pushes towards the user [default: off]."),
        option("--no-cache", "no_cache", is_flag=True,
               help="Recompute every step instead of reusing keys and values (slower, same "
                    "result)."),
        option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True),
        option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True),
        device_option,
    )(func)


def _sampling(top_k, top_p, temperature):
    from timetok.core.nn.sampling import Sampling

    return Sampling(temperature=temperature, top_k=top_k, top_p=top_p)


def _users(value: str | None, model) -> list[int | str]:
    if value is None:
        return list(range(model.n_users))
    return [part.strip() for part in value.split(",") if part.strip()]


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
             seed, batch_size, device, out, overwrite):
    """Sample spectrograms of chosen users: codes from the prior, images from the decoder."""
    import torch

    from timetok.doppler.model import GeneratorModel

    sampling = _sampling(top_k, top_p, temperature)
    device = resolve_device(device)
    out = Path(out)
    check_writable(out, "--out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty; pass --overwrite to replace it or another --out")
    model = GeneratorModel.from_pretrained(resolve_generator(model_dir), device)
    ids = model.user_ids(_users(users, model)).tolist()
    started = time.perf_counter()
    images = model.generate(ids, samples, sampling, guidance_scale, seed=seed,
                            batch_size=batch_size, use_cache=not no_cache)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    names = [model.config.users[i] for i in ids for _ in range(samples)]
    with writing(out, "--out"):
        write_images(out, images, names)
    click.echo(f"generated {len(images):,} images of {len(ids)} users in {seconds:.1f} s "
               f"({len(images) / seconds:,.1f} images/s on {device}) into {out}")


@doppler.command()
@option("--model", "model_dir", type=click.Path(), required=True,
        help="A generator folder, or the --save-path of 'timetok doppler train'.")
@option("--data-path", "--data", "data_path", type=click.Path(), default=None,
        help="The real images' folder [default: the one the model was trained on].")
@option("--generated", type=click.Path(file_okay=False), default=None,
        help="A folder from 'timetok doppler generate' to validate [default: sample anew].")
@option("--samples", type=click.IntRange(min=2), default=None,
        help="Images per user to generate [default: the users' real test images, at least "
             "10].")
@sampling_options
@option("--classifier-epochs", type=click.IntRange(min=1), default=40, show_default=True,
        help="Epochs of the user-ID classifier trained on the real training images.")
@option("--out", type=click.Path(file_okay=False), default=None,
        help="Report folder [default: MODEL/validation].")
@json_option
def validate(model_dir, data_path, generated, samples, temperature, top_k, top_p,
             guidance_scale, no_cache, seed, batch_size, device, classifier_epochs, out,
             as_json):
    """Judge generated images against real held-out ones: a user-ID classifier's accuracy
    on both, Fréchet distance in its feature space beside the real-vs-real floor,
    diversity, memorisation, codebook usage."""
    from timetok.doppler.pipeline import validate_generator

    sampling = _sampling(top_k, top_p, temperature)
    device = resolve_device(device)
    model_dir = resolve_generator(model_dir)
    out = Path(out) if out else model_dir / "validation"
    check_writable(out, "--out")
    with writing(out, "--out"):
        report = validate_generator(
            model_dir, out, data_path=data_path, generated=generated, samples=samples,
            sampling=sampling, guidance_scale=guidance_scale, use_cache=not no_cache,
            seed=seed, batch_size=batch_size, device=device,
            classifier_epochs=classifier_epochs)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo((out / "report.md").read_text())
