"""Reports as JSON + Markdown, and benchmark records in the project's common format."""

from __future__ import annotations

import datetime as dt
import functools
import json
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from timetok.core.utils import atomic_write_text


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.0f}"
    return "" if value is None else str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict, markdown: str) -> None:
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out_dir / "report.md", markdown + "\n")


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU x{torch.get_num_threads()} threads"


@functools.cache
def commit() -> str:
    """The checkout's short commit, with ``+dirty`` where tracked code differs from it (a
    benchmark rewriting its own results under ``benchmarks/results`` does not count)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(top,exclude)benchmarks/results")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if changed else head


def record(benchmark: str, dataset: str, setting: str, method: str, metric: str, value: float,
           source: str, command: str, machine_name: str = "") -> dict:
    """One result in the common benchmark format (see DEVELOPERS.md)."""
    return {
        "benchmark": benchmark, "dataset": dataset, "setting": setting, "method": method,
        "metric": metric, "value": value, "source": source,
        "machine": machine_name if source == "measured" else "",
        "commit": commit() if source == "measured" else "",
        "date": dt.date.today().isoformat(), "command": command,
    }


def write_results(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, json.dumps(records, indent=2) + "\n")
