"""Doppler prior variants on one budget: validation loss of the user-conditioned prior.

Trains the prior of system 3 several times over the same frozen tokenizer and images (a
finished ``benchmarks/doppler.py`` run folder holding ``sim/`` and ``tokenizer/``), each
for the same wall-clock cap, and compares the next-code validation loss each reaches and
how many nats per image the user prefix saves over the null prefix and over a wrong user.
A variant is ``BATCH:GRID[:every]``, the prior's batch size, whether it embeds each code's
row and column (``on``/``off``) and, with ``:every``, the user's embedding added to every
code's input besides the prefix, e.g.:

    python benchmarks/doppler.py --profile cpu --tokenizer-only --channels 32,64 \\
        --tokenizer-epochs 40 --cap-min 40 --runs runs/bench-doppler32
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

from doppler import PROFILES, RESULTS, run_options, validation_history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
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
    from timetok.core.report import machine, markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text
    from timetok.doppler.model import SpectrogramTokenizer
    from timetok.doppler.recipe import SpectrogramDataModule, train_prior

    quiet()
    profile = dict(PROFILES[args.profile], cap_min=args.cap_min)
    where = machine()
    device = "cuda" if "CPU" not in where else "cpu"
    command = "python benchmarks/doppler_prior.py " + shlex.join(sys.argv[1:])
    tokenizer = SpectrogramTokenizer.from_pretrained(runs / "tokenizer", device)
    sizes = dict(d_model=profile["d_model"], n_layers=profile["n_layers"], n_heads=8,
                 d_ff=profile["d_ff"], dropout=0.1, condition_dropout=0.1)
    rows, records = [], []
    fig, ax = plt.subplots(figsize=(6, 4))
    for batch, grid, every in variants:
        method = f"timetok-b{batch}-grid{'on' if grid else 'off'}" + ("-every" if every else "")
        dm = SpectrogramDataModule("image-folder", str(runs / "sim"), image_size=profile["size"],
                                   val=0.1, test=0.2, seed=args.seed,
                                   batch_size=profile["batch"])
        out = runs / "prior-variants" / method
        _, summary = train_prior(tokenizer, dm, out,
                                 run_options(profile["prior_epochs"], profile, args.seed,
                                             device),
                                 sizes | {"grid_positions": grid, "user_every_code": every},
                                 batch_size=batch)
        history = validation_history(out)
        steps = [int(row["step"]) for row in history]
        losses = [float(row["val_loss"]) for row in history]
        ax.plot(steps, losses, marker="o", label=method)
        row = {"method": method, "batch": batch, "grid positions": "on" if grid else "off",
               "user": "every code" if every else "prefix",
               "epochs": summary["epochs"], "steps": steps[-1], "val_loss": losses[-1],
               "user nats/image": float(history[-1]["val_user_nats"]),
               "wrong-user nats/image": float(history[-1]["val_wrong_user_nats"]),
               "best val_loss": min(losses), "s/step": summary["wall_s"] / max(steps[-1], 1)}
        rows.append(row)
        setting = f"cap={args.cap_min:g}min"
        records += [record("doppler_prior", "simulated-31", setting, method, metric,
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
    table = markdown_table(rows, ["method", "batch", "grid positions", "user", "epochs",
                                  "steps", "s/step", "val_loss", "best val_loss",
                                  "user nats/image", "wrong-user nats/image"])
    text = (f"# Doppler prior variants\n\nMachine: {where}. The same frozen tokenizer "
            f"({tokenizer.config.grid} x {tokenizer.config.grid} codes of "
            f"{tokenizer.config.codebook_size}) and images; each variant trains for "
            f"{args.cap_min:g} min (the learning rate decays over them). Uniform guessing "
            f"scores ln {tokenizer.config.codebook_size} = "
            f"{math.log(tokenizer.config.codebook_size):.2f} nats per code. User nats: what "
            f"the user prefix saves against the null prefix, at most ln {len(dm.users)} = "
            f"{math.log(len(dm.users)):.2f} per image were the null prefix the true mixture "
            f"over users; a null prefix fitted worse (it is seen on 10 % of sequences) "
            f"inflates it. Wrong-user nats: what the right user saves against another "
            f"one, free of the null prefix.\n\n{table}\n\n"
            f"![validation loss]({args.name}.png)\n\nCommand: `{command}`\n")
    atomic_write_text(RESULTS / f"{args.name}.md", text)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
