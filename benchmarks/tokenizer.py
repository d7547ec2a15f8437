"""Tokenizer benchmark: ETTm1, windows of 512, all 7 channels, compression 4, 256 codes.

Trains, for the same wall-time budget, through the same Lightning path and with the same
learning rate (cosine-decayed over that budget),
- ``timetok``: EMA codebook, k-means init, dead-code restart, RevIN, in float32;
- ``timetok-amp``: the same with ``--amp`` (bfloat16 autocast on CPU, float16 on GPU);
- ``plain-vq``: the in-run reference, a straight-through VQ-VAE of the same size
  (TOTEM's configuration: codebook learned by gradient, no k-means, no restarts, float32),
then evaluates each on every test window: reconstruction on the dataset's standardised
scale (RevIN inverted) and on the per-window RevIN scale, codebook usage, perplexity,
and training throughput in time steps per second.

    python benchmarks/tokenizer.py --data-dir ../shared/data/ett --minutes 8
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def plain_quantizer(dim: int, codebook_size: int, commitment: float):
    from vector_quantize_pytorch import VectorQuantize

    return VectorQuantize(
        dim=dim, codebook_size=codebook_size, commitment_weight=commitment,
        ema_update=False, learnable_codebook=True, kmeans_init=False,
        threshold_ema_dead_code=0, rotation_trick=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).parents[2] / "shared/data/ett"))
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per method")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-stride", type=int, default=1, help="1: every test window")
    parser.add_argument("--methods", default="plain-vq,timetok,timetok-amp")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", default="runs/bench-tokenizer")
    parser.add_argument("--name", default="tokenizer",
                        help="results file stem, e.g. tokenizer_core for a comparison run")
    args = parser.parse_args()

    import lightning as L
    from rich.console import Console
    from rich.progress import track

    from timetok.core.console import quiet
    from timetok.core.plots import plot_code_usage, plot_reconstructions
    from timetok.core.report import machine, markdown_table, record, write_results
    from timetok.core.train.runner import RunOptions, fit
    from timetok.core.utils import atomic_write_text
    from timetok.forecast.data import WindowDataModule
    from timetok.tokenizer.evaluate import evaluate_tokenizer
    from timetok.tokenizer.model import TokenizerConfig
    from timetok.tokenizer.recipe import TokenizerModule

    quiet()
    console = Console()
    command = "python benchmarks/tokenizer.py " + shlex.join(sys.argv[1:])
    datamodule = WindowDataModule(
        "ettm1", args.context, 0, args.batch_size, data_dir=args.data_dir, eval_stride=32,
    )
    data = datamodule.load()
    config = TokenizerConfig(n_channels=data.n_channels, context_points=args.context,
                             compression_factor=4, num_embeddings=256)
    where = machine()
    setting = f"L={args.context},cf=4,K=256,{args.minutes:g}min,seed={args.seed}"
    records, rows = [], []
    for method in args.methods.split(","):
        L.seed_everything(args.seed, verbose=False)
        module = TokenizerModule.from_config(config, lr=args.lr)
        if method == "plain-vq":
            module.model.quantizer.impl = plain_quantizer(
                config.embedding_dim, config.num_embeddings, config.commitment_cost
            )
        out_dir = Path(args.runs) / method
        options = RunOptions(max_time=args.minutes, val_every=500, checkpoint_every=500,
                             seed=args.seed, accelerator="auto", amp=method.endswith("-amp"))
        console.print(f"[bold]training {method}[/] for {args.minutes:g} min")
        _, summary = fit(module, datamodule, out_dir, options)
        module.select_weights(out_dir, summary)
        report, extras = evaluate_tokenizer(
            module.model, data, "test", stride=args.eval_stride, batch_size=64,
            track=lambda it, m=method: track(it, description=f"evaluating {m}", transient=True),
        )
        RESULTS.mkdir(parents=True, exist_ok=True)
        plot_reconstructions(RESULTS / f"{args.name}_{method}_reconstructions.png",
                             extras["samples_x"], extras["samples_y"], data.columns)
        plot_code_usage(RESULTS / f"{args.name}_{method}_code_usage.png", extras["code_counts"])
        metrics = {
            "recon_mse": report["mse"], "recon_mae": report["mae"],
            "recon_mse_revin": report["mse_revin"], "codebook_usage": report["usage"],
            "perplexity": report["perplexity"], "timesteps_per_s": summary["throughput_per_s"],
        }
        for metric, value in metrics.items():
            records.append(record("tokenizer", "ettm1", setting, method, metric, value,
                                  "measured", command, where))
        rows.append({"method": method, "source": "measured", **metrics,
                     "steps": summary["global_step"], "test windows": report["windows"]})
    published = {"recon_mse_revin": 0.073, "codebook_usage": 89 / 256, "perplexity": 67.0}
    for metric, value in published.items():
        records.append(record("tokenizer", "ettm1", "L=512,cf=4,K=256,8min",
                              "plain-vq (figure quoted in issue 2)", metric, value,
                              "published", "straight-through VQ-VAE, TOTEM configuration"))
    rows.append({"method": "plain-vq (issue 2 figure)", "source": "published", **published})
    columns = ["method", "source", "recon_mse", "recon_mae", "recon_mse_revin",
               "codebook_usage", "perplexity", "timesteps_per_s", "steps", "test windows"]
    table = markdown_table(rows, columns)
    header = (f"# Tokenizer, ETTm1 test ({setting}, eval stride {args.eval_stride})\n\n"
              f"Machine: {where}. Targets: recon_mse <= 0.05, recon_mse_revin <= 0.04, "
              "usage >= 0.95, throughput >= plain-vq.\n\n")
    atomic_write_text(RESULTS / f"{args.name}.md", header + table + "\n")
    write_results(RESULTS / f"{args.name}.json", records)
    console.print(header + table)
    console.print(json.dumps({"written": str(RESULTS / f"{args.name}.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
