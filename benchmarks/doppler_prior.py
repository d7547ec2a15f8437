"""Doppler prior variants on one budget: validation loss of the user-conditioned prior.

Trains the prior of system 3 several times over the same frozen tokenizer and images (a
finished ``benchmarks/doppler.py`` run folder holding ``sim/`` and ``tokenizer/``), each
for the same wall-clock cap, and compares the next-code validation loss each reaches and
how many nats per image the user prefix saves over the null prefix and over a wrong user.
Each variant is ``timetok doppler train --stage prior`` with the profile's
``configs/doppler/<profile>/train.yaml`` and its own ``BATCH:GRID[:every]``: the prior's
batch size, whether it embeds each code's row and column (``on``/``off``) and, with
``:every``, the user's embedding added to every code's input besides the prefix, e.g.:

    python benchmarks/doppler.py --profile cpu --tokenizer-only --set channels=32,64 \\
        --set tokenizer_epochs=40 --set max_time=40 --runs runs/bench-doppler32
    python benchmarks/doppler_prior.py --runs runs/bench-doppler32 \\
        --variants 32:off,8:off,8:on --cap-min 10

Writes ``benchmarks/results/<name>.{md,json}`` and a PNG of validation loss per step.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from doppler import CONFIGS, RESULTS, profiles, validation_history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=profiles(), default="cpu",
                        help="configs/doppler/<profile>/train.yaml: the prior's settings")
    parser.add_argument("--runs", default="runs/bench-doppler",
                        help="a doppler.py run folder holding sim/ and tokenizer/")
    parser.add_argument("--variants", default="32:off,8:off,8:on",
                        help="comma-separated BATCH:GRID[:every], GRID on or off")
    parser.add_argument("--cap-min", type=float, default=10.0,
                        help="each variant's training minutes")
    parser.add_argument("--name", default="doppler_prior")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    variants = []
    for item in args.variants.split(","):
        batch, grid, *every = item.split(":")
        if (not batch.isdigit() or int(batch) < 1 or grid not in ("on", "off")
                or every not in ([], ["every"])):
            parser.error(f"variant {item!r} is not BATCH:on or BATCH:off, optionally "
                         f"followed by :every")
        variants.append((int(batch), grid == "on", bool(every)))
    runs = Path(args.runs)
    for needed in ("sim", "tokenizer/config.json"):
        if not (runs / needed).exists():
            parser.error(f"{runs / needed} not found; run benchmarks/doppler.py with --runs "
                         f"{runs} (--tokenizer-only is enough) first")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timetok.core.console import quiet
    from timetok.core.report import machine, record, write_results
    from timetok.doppler.config import TrainConfig
    from timetok.doppler.model import SpectrogramTokenizer

    quiet()
    where = machine()
    config_file = CONFIGS / args.profile / "train.yaml"
    config = TrainConfig.from_yaml(config_file).replace(
        stage="prior", data_path=str(runs / "sim"), tokenizer_from=str(runs / "tokenizer"),
        max_time=args.cap_min, seed=args.seed, progress=False, overwrite=True)
    command = ("python benchmarks/doppler_prior.py " + shlex.join(sys.argv[1:])
               + f" (config: {config_file.relative_to(CONFIGS.parents[1])})")
    tokenizer = SpectrogramTokenizer.from_pretrained(runs / "tokenizer")
    rows, records = [], []
    fig, ax = plt.subplots(figsize=(6, 4))
    for batch, grid, every in variants:
        row, steps, losses = run_variant(config, runs, batch, grid, every)
        ax.plot(steps, losses, marker="o", label=row["method"])
        rows.append(row)
        setting = f"cap={args.cap_min:g}min"
        records += [record("doppler_prior", "simulated-31", setting, row["method"], metric,
                           row[key], "measured", command, where)
                    for metric, key in (("val_loss", "val_loss"), ("steps", "steps"),
                                        ("s_per_step", "s/step"),
                                        ("val_user_nats", "user nats/image"),
                                        ("val_wrong_user_nats", "wrong-user nats/image"))]
    ax.set(xlabel="optimiser step", ylabel="validation next-code loss (nats)",
           title=f"Doppler prior variants, {args.cap_min:g} min each")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / f"{args.name}.png", dpi=100)
    write_results(RESULTS / f"{args.name}.json", records)
    table = write_page(args.name, rows, tokenizer.config, args.cap_min, where, command)
    print(table)
    return 0


def write_page(name: str, rows: list[dict], tokenizer, cap_min: float, where: str,
               command: str) -> str:
    """The results page: the table, what its figures mean, the plot; returns the table."""
    from timetok.core.report import markdown_table
    from timetok.core.utils import atomic_write_text

    users = rows[-1]["users"]
    table = markdown_table(rows, ["method", "batch", "grid positions", "user", "epochs",
                                  "steps", "s/step", "val_loss", "best val_loss",
                                  "user nats/image", "wrong-user nats/image"])
    text = (f"# Doppler prior variants\n\nMachine: {where}. The same frozen tokenizer "
            f"({tokenizer.grid} x {tokenizer.grid} codes of "
            f"{tokenizer.codebook_size}) and images; each variant trains for "
            f"{cap_min:g} min (the learning rate decays over them). Uniform guessing "
            f"scores ln {tokenizer.codebook_size} = "
            f"{math.log(tokenizer.codebook_size):.2f} nats per code. User nats: what "
            f"the user prefix saves against the null prefix, at most ln {users} = "
            f"{math.log(users):.2f} per image were the null prefix the true mixture "
            f"over users; a null prefix fitted worse (it is seen on 10 % of sequences) "
            f"inflates it. Wrong-user nats: what the right user saves against another "
            f"one, free of the null prefix.\n\n{table}\n\n"
            f"![validation loss]({name}.png)\n\nCommand: `{command}`\n")
    atomic_write_text(RESULTS / f"{name}.md", text)
    return table


def run_variant(config, runs: Path, batch: int, grid: bool, every: bool
                ) -> tuple[dict, list[int], list[float]]:
    """Train one variant's prior through the recipe; its table row and validation curve."""
    from timetok.doppler.recipe import train

    method = f"timetok-b{batch}-grid{'on' if grid else 'off'}" + ("-every" if every else "")
    out = runs / "prior-variants" / method
    summary = train(config.replace(save_path=str(out), prior_batch_size=batch,
                                   grid_positions=grid, user_every_code=every))["prior"]
    history = validation_history(out / "generator")
    steps = [int(row["step"]) for row in history]
    losses = [float(row["val_loss"]) for row in history]
    row = {"method": method, "batch": batch, "grid positions": "on" if grid else "off",
           "user": "every code" if every else "prefix", "users": summary["users"],
           "epochs": summary["epochs"], "steps": steps[-1], "val_loss": losses[-1],
           "user nats/image": float(history[-1]["val_user_nats"]),
           "wrong-user nats/image": float(history[-1]["val_wrong_user_nats"]),
           "best val_loss": min(losses), "s/step": summary["wall_s"] / max(steps[-1], 1)}
    return row, steps, losses


if __name__ == "__main__":
    sys.exit(main())
