"""Training the spectrogram generator (system 3): the 2-D tokenizer, then the user prior.

One data module serves both stages: images and their users, split per user (every user
in every split), and — once :meth:`SpectrogramDataModule.encode_with` has run a frozen
tokenizer over them — the code grids the prior learns from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from timetok.core.data.images import ImageSet, load_images, split_per_user
from timetok.core.errors import ConfigError, DataError
from timetok.core.nn.conv2d import PatchDiscriminator2d
from timetok.core.nn.quantizer import CodeUsage
from timetok.core.train.modules import TaskDataModule, TaskModule
from timetok.core.utils import atomic_write_text
from timetok.doppler.model import (
    GeneratorConfig,
    GeneratorModel,
    SpectrogramTokenizer,
    SpectrogramTokenizerConfig,
)

DATA_NAME = "images.json"  # what the data were, beside an exported model
DISCRIMINATOR_CHANNELS = [32, 64, 128]  # the patch critic's widths: 3 halvings


class SpectrogramDataModule(TaskDataModule):
    """Images of ``dataset`` (a registered name, or ``image-folder`` with ``data_path``),
    at ``image_size``, split within each user into train/val/test (``val``, ``test``
    shares, ``seed``)."""

    def __init__(self, dataset: str = "image-folder", data_path: str | None = None,
                 data_dir: str | None = None, image_size: int = 128, resize: bool = True,
                 val: float = 0.1, test: float = 0.2, seed: int = 0, batch_size: int = 32,
                 num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self._data: ImageSet | None = None
        self.index: dict[str, np.ndarray] = {}
        self.codes: torch.Tensor | None = None

    def load(self) -> ImageSet:
        """Read and split the images once (also usable outside a Trainer)."""
        if self._data is None:
            hp = self.hparams
            self._data = load_images(hp.dataset, data_dir=hp.data_dir, data_path=hp.data_path,
                                     size=hp.image_size, resize=hp.resize)
            self.index = split_per_user(self._data.users, hp.val, hp.test, hp.seed)
        return self._data

    @property
    def users(self) -> list[str]:
        return self.load().user_names

    def images(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A split's images ``[N, S, S]`` and user ids ``[N]``."""
        data = self.load()
        return data.images[self.index[split]], data.users[self.index[split]]

    def encode_with(self, tokenizer: SpectrogramTokenizer, batch_size: int = 64) -> None:
        """Code grids of every image by a frozen tokenizer: the prior's data from now on."""
        self.codes = tokenizer.encode_images(self.load().images, batch_size)

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def split_dataset(self, split: str) -> TensorDataset:
        data = self.load()
        rows = self.index[split]
        users = torch.from_numpy(data.users[rows]).long()
        if self.codes is not None:
            return TensorDataset(self.codes[rows], users)
        return TensorDataset(torch.from_numpy(data.images[rows]), users)

    def save_artifacts(self, directory: Path) -> dict:
        """``images.json``: the source, size, users and split, so validation re-reads the
        same held-out images."""
        hp, data = self.hparams, self.load()
        info = {"dataset": hp.dataset, "data_path": hp.data_path, "image_size": hp.image_size,
                "users": data.user_names, "split": {"val": hp.val, "test": hp.test,
                                                     "seed": hp.seed},
                "images": {split: len(rows) for split, rows in self.index.items()}}
        atomic_write_text(Path(directory) / DATA_NAME, json.dumps(info, indent=2))
        return {"dataset": hp.dataset, "users": len(data.user_names),
                "images": info["images"]}


def read_data_info(model_dir: Path) -> dict:
    """The ``images.json`` a trained model carries."""
    path = Path(model_dir) / DATA_NAME
    if not path.is_file():
        raise DataError(f"{path} not found; pass a folder written by 'timetok doppler train'")
    return json.loads(path.read_text())


class CodebookMonitor:
    """Per epoch: code counts (usage, entropy, dead codes), distinct codes per user, and
    snapshots of the usage distribution for the plot after training."""

    def __init__(self, codebook_size: int, n_users: int):
        self.usage = CodeUsage(codebook_size)
        self.per_user = torch.zeros(n_users, codebook_size, dtype=torch.bool)
        self.snapshots: dict[int, np.ndarray] = {}

    def update(self, codes: torch.Tensor, users: torch.Tensor) -> None:
        self.usage.update(codes)
        flat = codes.detach().reshape(len(codes), -1)  # kept where the codes are: no sync
        self.per_user = self.per_user.to(flat.device)
        self.per_user[users.to(flat.device)[:, None].expand_as(flat), flat] = True

    def compute(self, counts: torch.Tensor, per_user: torch.Tensor, epoch: int
                ) -> dict[str, float]:
        self.snapshots[epoch] = counts[0].cpu().numpy()
        distinct = per_user.sum(dim=1).float()
        seen = distinct[distinct > 0]
        return {**self.usage.compute(counts),
                "codes_per_user": float(seen.mean()) if len(seen) else 0.0,
                "codes_per_user_min": float(seen.min()) if len(seen) else 0.0}

    def reset(self) -> None:
        self.usage.reset()
        self.per_user.zero_()


class SpectrogramTokenizerModule(TaskModule):
    """Stage one: reconstruction + VQ loss; codebook figures per epoch, restarts per step.

    With ``adversarial_weight`` > 0, from epoch ``adversarial_start`` on, a patch critic
    (:class:`~timetok.core.nn.conv2d.PatchDiscriminator2d`, hinge loss) learns to tell the
    reconstructions from the real images and the decoder is also trained to fool it: a
    pixel loss alone averages the fine texture of a spectrogram away. The decoder's term
    is scaled so that its gradient at the decoder's last layer is ``adversarial_weight``
    times the pixel loss's, reached linearly over the first ``adversarial_ramp`` epochs of the
    critic (0: at once) so that the decoder is not pulled hard by a critic that has not yet
    learned anything. Both players take one step per batch from one backward pass:
    the decoder's term reads the critic through detached weights and the critic's reads
    detached reconstructions, so each loss moves only its own player (and every parameter
    takes part in every step, as DDP expects). The critic is not part of the exported
    tokenizer, and the last weights are exported (the best validation pixel loss would pick
    the smoothest)."""

    throughput_unit: ClassVar[str] = "images"
    progress_metrics: ClassVar[tuple[str, ...]] = ("loss", "usage")

    def __init__(self, config: dict, n_users: int, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_steps: int = 100,
                 adversarial_weight: float = 0.0, adversarial_start: int = 0,
                 adversarial_ramp: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.model = SpectrogramTokenizer(SpectrogramTokenizerConfig(**config))
        self.monitors = {stage: CodebookMonitor(self.model.codebook_size, n_users)
                         for stage in ("train", "val")}
        if min(adversarial_weight, adversarial_start, adversarial_ramp) < 0:
            raise ConfigError("the adversarial weight, start epoch and ramp must be >= 0, got "
                              f"{adversarial_weight}, {adversarial_start} and {adversarial_ramp}")
        if adversarial_weight > 0:
            self.discriminator = PatchDiscriminator2d(DISCRIMINATOR_CHANNELS)

    def step(self, batch: Any, stage: str, batch_idx: int) -> torch.Tensor:
        images, users = batch
        out = self.model(images)
        values = {"loss": out.loss, "recon": out.recon_loss, "vq_loss": out.vq_loss}
        objective = out.loss
        if stage == "train" and self.hparams.adversarial_weight:
            objective = objective + self._adversarial(images, out, values, batch_idx)
        self.log_values(stage, values, len(images))
        self.monitors[stage].update(out.codes, users)
        return objective

    def _adversarial(self, images: torch.Tensor, out, values: dict, batch_idx: int
                     ) -> torch.Tensor:
        """The critic's hinge loss plus the decoder's term for fooling it (adding their
        figures to ``values``); before ``adversarial_start``, a zero that still touches
        every critic weight."""
        if self.current_epoch < self.hparams.adversarial_start:
            return sum(w.sum() for w in self.discriminator.parameters()) * 0.0
        fake = out.reconstruction[:, None] * 2 - 1
        real = self.discriminator(images[:, None] * 2 - 1)
        made = self.discriminator(fake.detach())
        critic = F.relu(1 - real).mean() + F.relu(1 + made).mean()
        frozen = {name: w.detach() for name, w in self.discriminator.named_parameters()}
        fool = -torch.func.functional_call(self.discriminator, frozen, (fake,)).mean()
        ramp = self._ramp(batch_idx)
        weight = self.hparams.adversarial_weight * ramp * self._balance(out.recon_loss, fool)
        values |= {"adv_g": fool, "adv_weight": weight, "adv_ramp": ramp, "adv_d": critic,
                   "adv_d_acc": ((real > 0).float().mean() + (made < 0).float().mean()) / 2}
        return critic + weight * fool

    def _ramp(self, batch_idx: int) -> float:
        """The share of the adversarial weight in force at this batch: the critic's epochs so
        far (fractional) over ``adversarial_ramp``, at most 1."""
        if not self.hparams.adversarial_ramp:
            return 1.0
        batches = self._trainer.num_training_batches if self._trainer is not None else 1
        epochs = self.current_epoch - self.hparams.adversarial_start + batch_idx / batches
        return min(1.0, epochs / self.hparams.adversarial_ramp)

    def _balance(self, recon: torch.Tensor, fool: torch.Tensor) -> torch.Tensor:
        """The ratio of the pixel loss's gradient norm to the adversarial term's at the
        decoder's last layer: the factor that makes their pulls comparable."""
        last = self.model.decoder.net[-1].weight
        g_recon = torch.autograd.grad(recon, last, retain_graph=True)[0]
        g_fool = torch.autograd.grad(fool, last, retain_graph=True)[0]
        return (g_recon.norm() / (g_fool.norm() + 1e-4)).clamp(max=1e4).detach()

    def select_weights(self, run_dir: Path, summary: dict) -> str:
        if self.hparams.adversarial_weight:
            return "last"
        return super().select_weights(run_dir, summary)

    def _log_codebook(self, stage: str) -> None:
        monitor = self.monitors[stage]
        reduce = self.trainer.strategy.reduce
        counts = reduce(monitor.usage.counts.to(self.device), reduce_op="sum").cpu()
        per_user = reduce(monitor.per_user.to(self.device, torch.float), reduce_op="sum").cpu()
        for name, value in monitor.compute(counts, per_user > 0, self.current_epoch).items():
            self.log(f"{stage}_{name}", value, prog_bar=name == "usage" and stage == "val")
        monitor.reset()

    def on_train_epoch_end(self) -> None:
        self._log_codebook("train")
        self.log("train_restarts", float(self.model.quantizer.restarts))  # since the start

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_codebook("val")
        self.monitors["val"].reset()

    def summary_lines(self, summary: dict) -> list[str]:
        return [f"codebook restarts during training: {self.model.quantizer.restarts}"]


class PriorModule(TaskModule):
    """Stage two: next-code cross-entropy after the user prefix, the user dropped for a
    ``condition_dropout`` share of sequences (classifier-free guidance) and, with
    ``code_noise``, that share of the codes the prior reads (not those it predicts) replaced
    by random ones: a regulariser for priors over few images.

    Validation also logs ``user_nats``: how many nats per image the user prefix saves
    against the null prefix. Were the null prefix the true mixture over users, this could
    not pass ln(users) nats; near zero, the prior has not learned to draw the user it is
    given. A null prefix fitted worse than the users' (it is seen on fewer sequences)
    inflates it; ``wrong_user_nats``, what the right user saves against another one (each
    image given the next user id), does not depend on the null prefix."""

    throughput_unit: ClassVar[str] = "images"

    def __init__(self, config: dict, lr: float = 5e-4, weight_decay: float = 0.01,
                 warmup_steps: int = 100):
        super().__init__()
        self.save_hyperparameters()
        self.model = GeneratorModel(GeneratorConfig(**config))

    @classmethod
    def around(cls, tokenizer: SpectrogramTokenizer, users: list[str], sizes: dict,
               **optimiser) -> PriorModule:
        """A prior module whose frozen tokenizer holds ``tokenizer``'s weights."""
        import dataclasses

        config = {"tokenizer": dataclasses.asdict(tokenizer.config), "users": users, **sizes}
        module = cls(config, **optimiser)
        module.model.tokenizer.load_state_dict(tokenizer.state_dict())
        return module

    def step(self, batch: Any, stage: str, batch_idx: int) -> torch.Tensor:
        codes, users = batch
        config, inputs = self.model.config, None
        if stage == "train" and config.condition_dropout:
            drop = torch.rand(len(users), device=users.device) < config.condition_dropout
            users = torch.where(drop, torch.full_like(users, self.model.n_users), users)
        if stage == "train" and config.code_noise:
            noisy = torch.rand(codes.shape, device=codes.device) < config.code_noise
            inputs = torch.where(noisy, torch.randint_like(codes, config.tokenizer.codebook_size),
                                 codes)
        loss = self.model.loss(codes, users, inputs)
        values = {"loss": loss}
        if stage != "train" and self.model.config.condition_dropout:
            null = torch.full_like(users, self.model.n_users)
            values["user_nats"] = (self.model.loss(codes, null) - loss) * codes[0].numel()
        if stage != "train" and self.model.n_users > 1:
            wrong = (users + 1) % self.model.n_users
            values["wrong_user_nats"] = (self.model.loss(codes, wrong) - loss) * codes[0].numel()
        self.log_values(stage, values, len(codes))
        return loss


def train_spectrogram_tokenizer(config: SpectrogramTokenizerConfig,
                                datamodule: SpectrogramDataModule, out_dir: Path, options,
                                *, lr: float = 1e-3, weight_decay: float = 1e-4,
                                warmup_steps: int = 100, resume: bool = False,
                                settings: dict | None = None, adversarial_weight: float = 0.0,
                                adversarial_start: int | None = None,
                                adversarial_ramp: float = 0.0) -> tuple[TaskModule, dict]:
    """Stage one: train and export the tokenizer into ``out_dir``, with its codebook plots
    (``codebook_usage.png``: the final distribution, ``codebook_history.png``: figures per
    epoch, ``codebook_snapshots.png``: the distribution over training). A positive
    ``adversarial_weight`` adds the patch critic from epoch ``adversarial_start`` on (by
    default a third of the run's epochs), its weight reached over ``adversarial_ramp``
    epochs (:class:`SpectrogramTokenizerModule`)."""
    import dataclasses

    import lightning as L
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.core.plots import plot_code_usage, plot_history, plot_usage_snapshots
    from timetok.core.train.runner import train_and_export

    L.seed_everything(options.seed, workers=True, verbose=False)
    if adversarial_start is None:
        adversarial_start = (options.n_epochs or 0) // 3
    module = SpectrogramTokenizerModule(dataclasses.asdict(config), len(datamodule.users),
                                        lr=lr, weight_decay=weight_decay,
                                        warmup_steps=warmup_steps,
                                        adversarial_weight=adversarial_weight,
                                        adversarial_start=adversarial_start,
                                        adversarial_ramp=adversarial_ramp)
    summary = train_and_export(module, datamodule, out_dir, options, resume, settings)
    if rank_zero_only.rank == 0:
        snapshots = module.monitors["val"].snapshots
        if snapshots:
            plot_code_usage(out_dir / "codebook_usage.png", snapshots[max(snapshots)][None])
            plot_usage_snapshots(out_dir / "codebook_snapshots.png", snapshots)
        plot_history(out_dir / "codebook_history.png", out_dir / "history.csv",
                     ["val_usage", "val_codes_per_user"], "codebook during training")
        summary["restarts"] = module.model.quantizer.restarts
    return module, summary


def train_prior(tokenizer: SpectrogramTokenizer, datamodule: SpectrogramDataModule,
                out_dir: Path, options, sizes: dict, *, lr: float = 5e-4,
                weight_decay: float = 0.01, warmup_steps: int = 100, resume: bool = False,
                settings: dict | None = None,
                batch_size: int | None = None) -> tuple[PriorModule, dict]:
    """Stage two: encode the images with the frozen ``tokenizer``, train the prior, export
    the whole generator (tokenizer + prior) into ``out_dir``. ``batch_size`` replaces the
    data module's for this stage (a prior over few images gains from more, smaller steps)."""
    import lightning as L

    from timetok.core.train.runner import train_and_export

    L.seed_everything(options.seed, workers=True, verbose=False)
    datamodule.encode_with(tokenizer)
    if batch_size is not None:
        datamodule.hparams.batch_size = batch_size
    module = PriorModule.around(tokenizer, datamodule.users, sizes, lr=lr,
                                weight_decay=weight_decay, warmup_steps=warmup_steps)
    summary = train_and_export(module, datamodule, out_dir, options, resume, settings)
    return module, summary
