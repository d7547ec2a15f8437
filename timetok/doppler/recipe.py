"""Training the spectrogram generator (system 3): the 2-D tokenizer, then the user prior.

:func:`train` is the recipe: one :class:`TrainConfig` in (the flags of ``timetok doppler
train``, or a YAML file under ``configs/doppler/``), the tokenizer trained into
``save_path/tokenizer`` and the generator (tokenizer + prior) into ``save_path/generator``,
each with its run files, and their summaries out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from timetok.core.errors import ConfigError
from timetok.core.nn.conv2d import PatchDiscriminator2d
from timetok.core.nn.quantizer import CodeUsage
from timetok.core.train.modules import TaskModule
from timetok.doppler.config import PRIOR_SIZES, TrainConfig
from timetok.doppler.data import SpectrogramDataModule
from timetok.doppler.model import (
    GeneratorConfig,
    GeneratorModel,
    SpectrogramTokenizer,
    SpectrogramTokenizerConfig,
)

DISCRIMINATOR_CHANNELS = [32, 64, 128]  # the patch critic's widths: 3 halvings


def restarts_line(restarts: int, steps: int, codebook_size: int) -> str:
    """What a tokenizer run's dead-code restarts mean, in one line."""
    if not restarts:
        return (f"codebook: none of the {codebook_size} codes went unused long enough to be "
                f"re-initialised over {steps:,} training steps")
    return (f"codebook: {restarts:,} dead codes were re-initialised over {steps:,} training "
            f"steps (a code of the {codebook_size} that the encoder stopped choosing restarts "
            "at one of its recent outputs; a code may restart more than once)")


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
        loss = self.model(codes, users, inputs).loss
        values = {"loss": loss}
        if stage != "train" and self.model.config.condition_dropout:
            null = torch.full_like(users, self.model.n_users)
            values["user_nats"] = (self.model(codes, null).loss - loss) * codes[0].numel()
        if stage != "train" and self.model.n_users > 1:
            wrong = (users + 1) % self.model.n_users
            values["wrong_user_nats"] = (self.model(codes, wrong).loss - loss) * codes[0].numel()
        self.log_values(stage, values, len(codes))
        return loss


def train(config: TrainConfig) -> dict[str, dict]:
    """Train the stages ``config.stage`` names; returns ``{stage: summary}``.

    The tokenizer goes into ``save_path/tokenizer`` with its codebook plots, the generator
    into ``save_path/generator``; each folder carries the ``images`` section of its
    ``data.json``. A folder that already holds a run is refused unless ``overwrite``.
    """

    from timetok.core.train.runner import begin

    begin(config.run_options())
    save_path = Path(config.save_path)
    folders = {"tokenizer": save_path / "tokenizer", "prior": save_path / "generator"}
    stages = config.stages()
    for stage in stages:
        config.check_new_run(folders[stage], resumable=False)
    tokenizer_dir = Path(config.tokenizer_from) if config.tokenizer_from else folders["tokenizer"]
    tokenizer_config = config.tokenizer_config() if "tokenizer" in stages else None
    if tokenizer_config is None and not (tokenizer_dir / "config.json").is_file():
        raise ConfigError(f"stage='prior' needs a trained tokenizer in {tokenizer_dir}; train "
                          "stage='tokenizer' (or 'both') first, or pass tokenizer_from")
    datamodule = config.datamodule()
    datamodule.load()
    summaries = {}
    if tokenizer_config is not None:
        _, summaries["tokenizer"] = train_tokenizer(config, tokenizer_config, datamodule,
                                                    folders["tokenizer"])
    if "prior" in stages:
        tokenizer = SpectrogramTokenizer.from_pretrained(tokenizer_dir)
        if tokenizer.config.image_size != config.image_size:
            raise ConfigError(f"the tokenizer in {tokenizer_dir} reads "
                              f"{tokenizer.config.image_size} px images; pass image_size "
                              f"{tokenizer.config.image_size}")
        _, summaries["prior"] = train_prior(config, tokenizer, datamodule, folders["prior"])
    return summaries


def _settings(config: TrainConfig, stage: str) -> dict:
    return config.settings() | {"stage": stage}


def train_tokenizer(config: TrainConfig, tokenizer_config: SpectrogramTokenizerConfig,
                    datamodule: SpectrogramDataModule, out_dir: Path
                    ) -> tuple[SpectrogramTokenizerModule, dict]:
    """Stage one: train and export the tokenizer into ``out_dir``, with its codebook plots
    (``codebook_usage.png``: the final distribution, ``codebook_history.png``: figures per
    epoch, ``codebook_snapshots.png``: the distribution over training)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.core.plots import plot_code_usage, plot_usage_snapshots
    from timetok.core.train.runner import train_and_export
    from timetok.doppler.report import plot_codebook_history

    weight_decay = config.tokenizer_weight_decay
    module = SpectrogramTokenizerModule(
        dataclasses.asdict(tokenizer_config), len(datamodule.users), lr=config.tokenizer_lr,
        weight_decay=config.weight_decay if weight_decay is None else weight_decay,
        warmup_steps=config.warmup_steps, adversarial_weight=config.adversarial_weight,
        adversarial_start=config.adversarial_start, adversarial_ramp=config.adversarial_ramp)
    summary = train_and_export(module, datamodule, out_dir,
                               config.stage_options(config.tokenizer_epochs),
                               settings=_settings(config, "tokenizer"), resumable=False)
    if rank_zero_only.rank == 0:
        snapshots = module.monitors["val"].snapshots
        if snapshots:
            plot_code_usage(out_dir / "codebook_usage.png", snapshots[max(snapshots)][None])
            plot_usage_snapshots(out_dir / "codebook_snapshots.png", snapshots)
        plot_codebook_history(out_dir / "codebook_history.png", out_dir / "history.csv")
        summary["restarts"] = module.model.quantizer.restarts
        summary["codebook_size"] = module.model.codebook_size
    return module, summary


def train_prior(config: TrainConfig, tokenizer: SpectrogramTokenizer,
                datamodule: SpectrogramDataModule, out_dir: Path) -> tuple[PriorModule, dict]:
    """Stage two: encode the images with the frozen ``tokenizer``, train the prior, export
    the whole generator (tokenizer + prior) into ``out_dir``. ``prior_batch_size`` replaces
    the data module's batch size for this stage (a prior over few images gains from more,
    smaller steps)."""
    from timetok.core.train.runner import train_and_export

    datamodule.encode_with(tokenizer)
    datamodule.hparams.batch_size = config.prior_batch_size or config.batch_size
    module = PriorModule.around(tokenizer, datamodule.users,
                                {name: getattr(config, name) for name in PRIOR_SIZES},
                                lr=config.lr, weight_decay=config.weight_decay,
                                warmup_steps=config.warmup_steps)
    summary = train_and_export(module, datamodule, out_dir,
                               config.stage_options(config.prior_epochs),
                               settings=_settings(config, "prior"), resumable=False)
    return module, summary

