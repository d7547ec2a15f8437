"""Freeze policies: which parts of a model train, and a table that shows it."""

from __future__ import annotations

from torch import nn

from timetok.errors import ConfigError


def freeze(model: nn.Module, frozen: list[str]) -> None:
    """Freeze the parameters at or under the given paths (``lm.transformer``, ``query``)."""
    for name, param in model.named_parameters():
        param.requires_grad_(not any(name == p or name.startswith(p + ".") for p in frozen))


def parameter_table(model: nn.Module, parts: dict[str, list[str]]) -> list[dict]:
    """Trainable and total parameters per named part; every parameter counted once.

    ``parts`` maps a display name to parameter-name prefixes; parameters matching no
    prefix are counted under ``other`` so nothing goes unreported.
    """
    rows = {name: {"part": name, "trainable": 0, "total": 0} for name in [*parts, "other"]}
    for name, param in model.named_parameters():
        part = next((p for p, prefixes in parts.items()
                     if any(name.startswith(prefix) for prefix in prefixes)), "other")
        rows[part]["total"] += param.numel()
        rows[part]["trainable"] += param.numel() if param.requires_grad else 0
    table = [row for row in rows.values() if row["total"]]
    table.append({"part": "all", "trainable": sum(r["trainable"] for r in table),
                  "total": sum(r["total"] for r in table)})
    return table


def require_trainable(table: list[dict], policy: str) -> None:
    if table[-1]["trainable"] == 0:
        raise ConfigError(
            f"--freeze {policy} leaves no parameter to train; choose a policy that keeps a "
            "head or the backbone trainable"
        )


def format_table(table: list[dict]) -> str:
    lines = [f"{'part':<14}{'trainable':>12}{'total':>12}"]
    lines += [f"{r['part']:<14}{r['trainable']:>12,}{r['total']:>12,}" for r in table]
    return "\n".join(lines)
