"""Optimiser and schedule shared by the training modules."""

from __future__ import annotations

import math

import torch


def adamw_cosine(params, lr: float, weight_decay: float, warmup_steps: int, total_steps: float):
    """AdamW with linear warm-up then cosine decay to 10 % of ``lr``, stepped every batch."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total = max(int(total_steps), 1) if math.isfinite(total_steps) else 10**9
    warmup = min(warmup_steps, total // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
