"""Freeze policies: which parts of a model train, and a table that shows it.

A model's *parts* map a name (``tokenizer``, ``backbone``, ``code-head`` …) to parameter
paths; a *policy* names a list of parts to freeze. ``freeze`` takes a policy's name or a
comma list of part names, so any combination can be asked for, and one that leaves
nothing to train is refused.
"""

from __future__ import annotations

from torch import nn

from timetok.core.errors import ConfigError


def _under(name: str, paths: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in paths)


def resolve_freeze(choice: str, parts: dict[str, list[str]],
                   policies: dict[str, list[str]]) -> list[str]:
    """A policy name or a comma list of part names -> the names of the parts to freeze."""
    choice = str(choice).strip()
    if choice in policies:
        return list(policies[choice])
    names = [name.strip() for name in choice.split(",") if name.strip()]
    unknown = [name for name in names if name not in parts]
    if not names or unknown:
        raise ConfigError(
            f"freeze_policy takes a policy ({', '.join(policies)}) or a comma list of parts "
            f"({', '.join(parts)}), got {choice!r}"
        )
    return names


def freeze(model: nn.Module, parts: dict[str, list[str]], frozen: list[str]) -> None:
    """Make every parameter of the ``frozen`` parts untrainable and every other trainable."""
    paths = [path for name in frozen for path in parts[name]]
    for name, param in model.named_parameters():
        param.requires_grad_(not _under(name, paths))


def parameter_table(model: nn.Module, parts: dict[str, list[str]]) -> list[dict]:
    """Trainable and total parameters per part; every parameter counted once, under the
    first part that holds it, and under ``other`` when none does."""
    rows = {name: {"part": name, "trainable": 0, "total": 0} for name in [*parts, "other"]}
    for name, param in model.named_parameters():
        part = next((p for p, paths in parts.items() if _under(name, paths)), "other")
        rows[part]["total"] += param.numel()
        rows[part]["trainable"] += param.numel() if param.requires_grad else 0
    table = [row for row in rows.values() if row["total"]]
    table.append({"part": "all", "trainable": sum(r["trainable"] for r in table),
                  "total": sum(r["total"] for r in table)})
    return table


def format_table(table: list[dict]) -> str:
    lines = [f"{'part':<14}{'trainable':>12}{'total':>12}"]
    lines += [f"{r['part']:<14}{r['trainable']:>12,}{r['total']:>12,}" for r in table]
    return "\n".join(lines)


def require_trainable(table: list[dict], choice: str) -> None:
    """Refuse a run with nothing to train; the error carries the table to show."""
    if table[-1]["trainable"] == 0:
        raise ConfigError(
            f"freeze_policy {choice!r} leaves no parameter to train; keep a head or the backbone "
            "trainable",
            details=format_table(table),
        )
