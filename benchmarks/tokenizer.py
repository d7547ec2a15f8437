"""Tokenizer benchmark: ETTm1, windows of 512, all 7 channels, compression 4, 256 codes.

Trains each method through the library recipe (``timetok.tokenizer.recipe.train``) with
its config, ``configs/tokenizer/ettm1/<method>.yaml``, the same run a user starts with
``timetok tokenizer train --config configs/tokenizer/ettm1-<method>.yaml``:
- ``timetok``: EMA codebook, k-means init, dead-code restart, RevIN, in float32;
- ``timetok-amp``: the same with ``amp`` (bfloat16 autocast on CPU, float16 on GPU);
- ``plain-vq``: the in-run reference, a straight-through VQ-VAE of the same size
  (TOTEM's configuration: codebook learned by gradient, no k-means, no restarts, float32).
Each is budgeted in steps: those it reached in 8 minutes on 2 CPU threads in the run the
figures come from. Then each is evaluated on every test window: reconstruction on the
dataset's standardised scale (RevIN inverted) and on the per-window RevIN scale, codebook
usage, perplexity, and training throughput in time steps per second.

    python benchmarks/tokenizer.py --data-dir ../shared/data/ett
    python benchmarks/tokenizer.py --max-steps 20 --eval-stride 64 --out /tmp/tok  # smoke
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ROOT / "configs" / "tokenizer"


def config_path(method: str) -> Path:
    return CONFIGS / "ettm1" / f"{method}.yaml"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/ett"))
    parser.add_argument("--eval-stride", type=int, default=1, help="1: every test window")
    parser.add_argument("--methods", default="plain-vq,timetok,timetok-amp")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="override every config's step budget (a quick check)")
    parser.add_argument("--seed", type=int, default=None, help="override the configs' seed")
    parser.add_argument("--runs", default="runs/bench-tokenizer", help="run folders")
    parser.add_argument("--name", default="tokenizer",
                        help="results file stem, e.g. tokenizer_core for a comparison run")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results files")
    return parser.parse_args()


def measure(method: str, args: argparse.Namespace, console) -> tuple[dict, dict, dict]:
    """Train one method with its config and evaluate it on every test window; returns the
    config, the training summary and the evaluation's metrics (plots written)."""
    from rich.progress import track

    from timetok.tokenizer.evaluate import evaluate, load
    from timetok.tokenizer.recipe import TokenizerTrainConfig, train

    overrides = {key: value for key, value in (("max_steps", args.max_steps),
                                               ("seed", args.seed)) if value is not None}
    config = TokenizerTrainConfig.from_yaml(
        config_path(method), data_dir=args.data_dir, save_path=str(Path(args.runs) / method),
        overwrite=True, **overrides)
    console.print(f"[bold]training {method}[/] ({config_path(method).relative_to(ROOT)}, "
                  f"{config.max_steps} steps)")
    summary = train(config)
    model, data = load(config.run_dir, config.dataset, data_dir=config.data_dir)
    evaluation = evaluate(
        model, data, "test", stride=args.eval_stride, batch_size=64,
        track=lambda it: track(it, description=f"evaluating {method}", transient=True),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    evaluation.plot(out / f"{args.name}_{method}_reconstructions.png",
                    out / f"{args.name}_{method}_code_usage.png")
    report = evaluation.report
    metrics = {
        "recon_mse": report["mse"], "recon_mae": report["mae"],
        "recon_mse_revin": report["mse_revin"], "codebook_usage": report["usage"],
        "perplexity": report["perplexity"], "timesteps_per_s": summary["throughput_per_s"],
    }
    return config, summary | {"test_windows": report["windows"]}, metrics


def main() -> int:
    args = parse_args()

    from rich.console import Console

    from timetok.core.console import quiet
    from timetok.core.report import machine, markdown_table, record, write_results
    from timetok.core.utils import atomic_write_text

    quiet()
    console = Console()
    out = Path(args.out)
    command = "python benchmarks/tokenizer.py " + shlex.join(sys.argv[1:])
    where = machine()
    records, rows, configs = [], [], []
    for method in args.methods.split(","):
        config, summary, metrics = measure(method, args, console)
        setting = (f"L={config.context_points},cf={config.compression_factor},"
                   f"K={config.num_embeddings},{config.max_steps} steps,seed={config.seed}")
        path = config_path(method).relative_to(ROOT)
        configs.append(f"{method}: `{path}`")
        for metric, value in metrics.items():
            records.append(record("tokenizer", config.dataset, setting, method, metric, value,
                                  "measured", f"{command}  # config {path}", where))
        rows.append({"method": method, "source": "measured", **metrics,
                     "steps": summary["global_step"], "test windows": summary["test_windows"]})
    published = {"recon_mse_revin": 0.073, "codebook_usage": 89 / 256, "perplexity": 67.0}
    for metric, value in published.items():
        records.append(record("tokenizer", "ettm1", "L=512,cf=4,K=256,8min",
                              "plain-vq (figure quoted in issue 2)", metric, value,
                              "published", "straight-through VQ-VAE, TOTEM configuration"))
    rows.append({"method": "plain-vq (issue 2 figure)", "source": "published", **published})
    columns = ["method", "source", "recon_mse", "recon_mae", "recon_mse_revin",
               "codebook_usage", "perplexity", "timesteps_per_s", "steps", "test windows"]
    table = markdown_table(rows, columns)
    header = (f"# Tokenizer, ETTm1 test (L=512,cf=4,K=256, eval stride {args.eval_stride})\n\n"
              f"Machine: {where}. Configs: {'; '.join(configs)}. Targets: recon_mse <= 0.05, "
              "recon_mse_revin <= 0.04, usage >= 0.95, throughput >= plain-vq.\n\n")
    atomic_write_text(out / f"{args.name}.md", header + table + "\n")
    write_results(out / f"{args.name}.json", records)
    console.print(header + table)
    console.print(json.dumps({"written": str(out / f"{args.name}.json")}))
    return 0

if __name__ == "__main__":
    sys.exit(main())
