"""Reading the Lightning checkpoints of our own runs, without unpickling arbitrary objects."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from timetok.core.errors import CheckpointError
from timetok.core.model_folder import compare_state_dicts


def checkpoint_state(path: Path) -> dict:
    """A checkpoint's contents, loaded with ``weights_only=True``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path} ({reason}); it is corrupt") from None


def check_resume(module: nn.Module, ckpt: Path) -> None:
    """Refuse a checkpoint whose weights do not fit the module about to resume from it."""
    state = checkpoint_state(ckpt).get("state_dict", {})
    report = compare_state_dicts(state, module.state_dict())
    if not report.clean:
        raise CheckpointError(
            f"checkpoint {ckpt} does not fit these settings ({report.summary()}); resume with "
            "the run's own settings (drop the flags that change the model)"
        )
