"""What an evaluation and a tokenizer run show: the Markdown report, the grid of real and
generated images, the codebook's history, and where a small run stands against the full
benchmark.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from timetok.core.errors import DataError
from timetok.core.utils import atomic_write_text
from timetok.doppler.metrics import check_images, check_users

# What the full benchmark reaches (benchmarks/results/doppler.md: the generator of
# configs/doppler/grid32-cpu.yaml, 31 simulated users x 50 images, 35 of each for training,
# 24 prior epochs; guidance 2, mean and sample standard deviation over three seeds).
FULL_RUN = {"users": 31, "train_images": 1085, "prior_epochs": 24, "guidance_scale": 2.0,
            "accuracy_ratio": (0.84, 0.08), "frechet_ratio": (14.5, 1.4),
            "config": "configs/doppler/grid32-cpu.yaml",
            "results": "benchmarks/results/doppler.md"}


def run_scale(users: int, train_images: int, prior_epochs: int | None) -> dict[str, Any]:
    """How a generator's training compares with the full benchmark's, and a note saying
    what to make of its figures when it is smaller (a toy run)."""
    full = FULL_RUN
    smaller = [f"{mine:,} {what} against {theirs:,}" for mine, theirs, what in (
        (users, full["users"], "users"), (train_images, full["train_images"], "training images"),
        (prior_epochs, full["prior_epochs"], "prior epochs")) if mine is not None and mine < theirs]
    (acc, acc_sd), (fd, fd_sd) = full["accuracy_ratio"], full["frechet_ratio"]
    reaches = (f"The full benchmark ({full['config']}, {full['results']}) reaches a user "
               f"accuracy ratio of {acc} ± {acc_sd} and a Fréchet ratio of {fd} ± {fd_sd} "
               f"with guidance_scale {full['guidance_scale']:g} over three seeds.")
    note = (f"A toy run ({', '.join(smaller)}): its figures show the pipeline works, not what "
            f"the generator can do. {reaches}" if smaller else reaches)
    return {"users": users, "train_images": train_images, "prior_epochs": prior_epochs,
            "toy": bool(smaller), "note": note}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary table, the memorisation verdict, the codebook
    figures and a per-user table."""
    acc, fd, div = report["accuracy"], report["frechet"], report["diversity"]
    mem = report["memorisation"]
    data = report["data"]
    rows = [
        ("classifier accuracy", acc["real_test"], acc["generated"], acc["ratio"]),
        ("Fréchet distance to real test (real: train-vs-test floor)",
         fd["real_train_vs_real_test"], fd["generated_vs_real_test"], fd["ratio"]),
        ("diversity, mean pairwise feature distance", div["real_test"], div["generated"],
         div["ratio"]),
        ("diversity, averaged per user", div["per_user_mean_real_test"],
         div["per_user_mean_generated"], div["per_user_mean_ratio"]),
        ("median nearest-train distance, features", mem["features"]["median_test"],
         mem["features"]["median_generated"], None),
    ]
    scale = report.get("scale")
    lines = [
        "# Generated micro-Doppler spectrograms: evaluation",
        "",
        *([f"**{scale['note']}**", ""] if scale else []),
        f"{data['generated_images']} generated and {data['test_images']} real test images "
        f"({data['height']}x{data['width']}) of {data['users']} users; classifier trained on "
        f"{data['train_images'] - data['validation_images']} real training images.",
        "",
        "| metric | real | generated | generated / real |",
        "|---|---|---|---|",
        *(f"| {name} | {_fmt(r)} | {_fmt(g)} | {_fmt(q)} |" for name, r, g, q in rows),
        "",
        f"**Memorisation: {mem['verdict']}.** In feature space, "
        f"{mem['features']['share_below']:.1%} of generated images lie closer to the training "
        f"set than the closest {mem['features']['quantile']:.0%} of real test images do "
        f"(tolerance {mem['features']['tolerance']:.0%}). In pixels, "
        f"{mem['pixels']['share_nearest_train']:.1%} of the "
        f"{mem['pixels']['nearest_real_images']} real images nearest to generated ones are "
        f"training images, {mem['pixels']['expected_share']:.1%} without copying (excess "
        f"{mem['pixels']['excess']:.2f}, z = {mem['pixels']['z']:.1f}; memorised above "
        f"{mem['pixels']['margin']:.2f} and z = 3); near-exact pixel copies: "
        f"{mem['pixels']['near_exact_copies']}.",
        "",
    ]
    if report.get("codebook"):
        lines += ["| codebook | value |", "|---|---|",
                  *(f"| {k} | {_fmt(v)} |" for k, v in report["codebook"].items()), ""]
    lines += ["| user | real test | generated | accuracy real | accuracy generated | ratio "
              "| diversity real | diversity generated | ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for user, row in report["per_user"].items():
        lines.append("| " + " | ".join(_fmt(v) for v in (
            user, row["real_test_images"], row["generated_images"], row["accuracy_real_test"],
            row["accuracy_generated"], row["accuracy_ratio"], row["diversity_real_test"],
            row["diversity_generated"], row["diversity_ratio"])) + " |")
    return "\n".join(lines) + "\n"


def pick_users(users: Sequence[int], max_users: int = 8) -> list[int]:
    """All of ``users`` (sorted, unique) if at most ``max_users``, else ``max_users`` of them
    spread evenly over the range."""
    unique = sorted(set(int(u) for u in users))
    if len(unique) <= max_users:
        return unique
    return [unique[i] for i in np.linspace(0, len(unique) - 1, max_users).round().astype(int)]


def plot_grid(path: Path, real: np.ndarray, real_users: np.ndarray, generated: np.ndarray,
              generated_users: np.ndarray, users: Sequence[int], per_user: int = 4,
              label: str = "generated") -> None:
    """For each of ``users``, a row of real images above a row of generated ones (or of
    whatever ``label`` names: reconstructions, say)."""
    from timetok.core.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(2 * len(users), per_user, squeeze=False,
                             figsize=(1.4 * per_user, 1.5 * 2 * len(users)))
    for r, user in enumerate(users):
        for offset, (images, owners, title) in enumerate(
                ((real, real_users, f"user {user} real"),
                 (generated, generated_users, label))):
            row = axes[2 * r + offset]
            chosen = images[owners == user][:per_user]
            for c, ax in enumerate(row):
                ax.set_axis_off()
                if c < len(chosen):
                    ax.imshow(chosen[c], cmap="gray", origin="upper", vmin=0, vmax=1,
                              aspect="auto", interpolation="nearest")
            row[0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    _save(fig, path)


def write_report(out_dir: str | os.PathLike, report: dict[str, Any], real_test: np.ndarray,
                 real_test_users: np.ndarray, generated: np.ndarray,
                 generated_users: np.ndarray, per_user: int = 4,
                 users: Sequence[int] | None = None, max_users: int = 8) -> Path:
    """Write ``report.json``, ``report.md`` and ``grid.png`` to ``out_dir`` (each
    atomically). The grid shows ``users`` (default: :func:`pick_users` of the users
    present, at most ``max_users``), ``per_user`` images each."""
    real_test = check_images(real_test, "real_test")
    real_test_users = check_users(real_test_users, len(real_test), "real_test_users")
    generated = check_images(generated, "generated")
    generated_users = check_users(generated_users, len(generated), "generated_users")
    if per_user < 1:
        raise DataError(f"per_user must be >= 1, got {per_user}; pass a positive count")
    if users is None:
        users = pick_users([*real_test_users.tolist(), *generated_users.tolist()], max_users)
    if not users:
        raise DataError("no users to show in the grid; pass user ids present in the images")
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    plot_grid(out_dir / "grid.png", real_test, real_test_users, generated, generated_users,
              list(users), per_user)
    return out_dir


def plot_codebook_history(path: Path, history_csv: Path) -> None:
    """A tokenizer run's codebook per epoch, in two panels: the share of codes used (0-1)
    and the distinct codes per user (counts), each on its own axis."""
    from timetok.core.plots import _pyplot, _save

    with Path(history_csv).open() as handle:
        rows = list(csv.DictReader(handle))
    plt = _pyplot()
    fig, (usage, per_user) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    for ax, columns, label in (
            (usage, {"val_usage": "validation", "train_usage": "training"},
             "share of codes used"),
            (per_user, {"val_codes_per_user": "mean over users",
                        "val_codes_per_user_min": "fewest of any user"},
             "distinct codes per user (validation)")):
        for column, name in columns.items():
            values = [float(row[column]) if row.get(column) else np.nan for row in rows]
            ax.plot(epochs, values, marker="o", ms=3, label=name)
        ax.set(xlabel="epoch", ylabel=label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    usage.set_ylim(0, 1.05)
    fig.suptitle("codebook during training")
    fig.tight_layout()
    _save(fig, path)
