"""The Lightning checkpoints of our own runs: written whole, read without unpickling
arbitrary objects, and holding what a resumed run needs to continue as if never stopped.

A run resumed from a checkpoint written mid-epoch trains on the same batches, in the same
order and with the same random draws (masks, dropout, augmentation, codebook restarts) as
the run that wrote it would have; on one process with the same settings and threads, its
weights equal an uninterrupted run's bit for bit. Left to itself, Lightning rewrites
``last.ckpt`` in place, so that a kill while it saves leaves it cut
(:class:`AtomicCheckpointIO`); saves it before the module's own end-of-step hook, a
momentum target's step behind (:class:`StepCheckpoint`); and restarts a stopped epoch in a
new order with the generators as the new process seeded them (:class:`ResumableSampler`
and :class:`ResumeState` store the epoch's order and the generators' states, and put them
back).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import RandomSampler

from timetok.core.errors import CheckpointError
from timetok.core.model_folder import compare_state_dicts
from timetok.core.utils import atomic_path


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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, renamed into place once written: a run killed while
    it saves keeps its previous ``last.ckpt`` whole (Lightning rewrites the file in place)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every`` optimiser steps, written as the next batch starts:
    after the module's own ``on_train_batch_end`` (a momentum target's step, say), which
    Lightning runs after the callbacks', so that a run resumed from it misses nothing."""

    def __init__(self, dirpath: Path, every: int):
        super().__init__(dirpath=dirpath, save_top_k=0, save_last=True,
                         every_n_train_steps=every)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Nothing yet: see the class."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, None, batch, batch_idx)

    def on_train_end(self, trainer, pl_module) -> None:
        """The last step's checkpoint, which no next batch writes (and Lightning's: a
        ``last.ckpt`` for a run that wrote none)."""
        super().on_train_batch_end(trainer, pl_module, None, None, -1)
        super().on_train_end(trainer, pl_module)


class ResumableSampler(RandomSampler):
    """PyTorch's ``RandomSampler`` (each pass in an order drawn from a seed that torch's
    generator gives), remembering the pass's seed; ``resume_at = (seed, seen)`` makes the
    next pass that order without its first ``seen`` items: the rest of an epoch a
    checkpoint stopped in."""

    def __init__(self, data_source, resume_at: tuple[int, int] | None = None):
        super().__init__(data_source)
        self.seed: int | None = None
        self.resume_at = resume_at

    def __iter__(self):
        if self.resume_at is None:  # as RandomSampler draws it
            self.seed, seen = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        else:
            (self.seed, seen), self.resume_at = self.resume_at, None
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()[seen:]


def _random_state() -> dict:
    """The states of torch's (CPU and initialised CUDA), numpy's and Python's generators,
    in types a ``weights_only`` load reads."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss,
                       gauss)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_random_state(state: dict) -> None:
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeState(Callback):
    """Writes into each checkpoint the random generators' states and, mid-epoch, the
    epoch's order (its sampler's seed and the items trained on); a run resumed from it
    takes up that order and, as training restarts, those states."""

    KEY = "resume_state"

    def __init__(self):
        self.random: dict | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.completed  # this epoch's
        order = None
        if isinstance(sampler, ResumableSampler) and sampler.seed is not None and (
                batches < len(loader)):
            order = (sampler.seed, batches * loader.batch_size)
        checkpoint[self.KEY] = {"random": _random_state(), "order": order}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        saved = checkpoint.get(self.KEY)
        if saved is not None:
            self.random = saved["random"]
            trainer.datamodule.resume_order = saved["order"]

    def on_train_start(self, trainer, pl_module) -> None:
        if self.random is not None:  # after the loaders have drawn their seeds
            _set_random_state(self.random)
            self.random = None
