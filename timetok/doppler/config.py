"""The settings of the spectrogram generator's recipes, one dataclass per stage.

Field names are the flags of ``timetok doppler train`` and ``timetok doppler evaluate``
with underscores, and the defaults are theirs: a YAML file under ``configs/doppler/``
serves both ``--config FILE`` and ``TrainConfig.from_yaml(FILE)``. Light to import (the
CLI reads its defaults from here): models and data load inside the methods that need them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timetok.core.config import RunConfig
from timetok.core.errors import ConfigError

STAGES = ("both", "tokenizer", "prior")
PRIOR_SIZES = ("d_model", "n_layers", "n_heads", "d_ff", "dropout", "condition_dropout",
               "grid_positions", "user_every_code", "code_noise")


def resolve_generator(path: str | os.PathLike) -> Path:
    """A generator folder, or the ``save_path`` of a training run holding one."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path / "generator" / "config.json").is_file():
        return path / "generator"
    return path


def _int_list(value: Any, name: str) -> list[int]:
    """Positive integers given as a list or as ``"32,64"``."""
    parts = str(value).replace(",", " ").split() if isinstance(value, str) else list(value)
    if not parts or not all(str(p).strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"{name} takes positive integers separated by commas (e.g. 32,64), "
                          f"got {value!r}")
    return [int(p) for p in parts]


@dataclass
class TrainConfig(RunConfig):
    """``timetok doppler train``'s settings: the data, the tokenizer (stage one), the prior
    (stage two), their optimisers. ``lr`` is the prior's (``tokenizer_lr`` the tokenizer's);
    ``batch_size``, ``weight_decay`` and the run settings apply to both stages unless
    ``prior_batch_size`` / ``tokenizer_weight_decay`` set a stage's own; ``max_time`` caps
    each stage. The stages' epochs are ``tokenizer_epochs`` and ``prior_epochs``
    (``n_epochs`` is refused)."""

    save_path: str | None = "runs/doppler"
    data_path: str | None = None
    dataset: str = "image-folder"
    data_dir: str | None = None
    image_size: int = 128
    resize: bool = True
    val_share: float = 0.1
    test_share: float = 0.2
    stage: str = "both"
    channels: list[int] = field(default_factory=lambda: [32, 64])
    n_res_layers: int = 1
    embedding_dim: int = 64
    codebook_size: int = 512
    quantizer: str = "vq"
    decay: float = 0.9
    dead_code_threshold: float = 2.0
    tokenizer_epochs: int = 30
    tokenizer_lr: float = 1e-3
    tokenizer_weight_decay: float | None = None  # None: weight_decay
    adversarial_weight: float = 0.0
    adversarial_start: int | None = None  # None: a third of tokenizer_epochs
    adversarial_ramp: float = 0.0
    tokenizer_from: str | None = None  # the prior's tokenizer; None: save_path/tokenizer
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    d_ff: int = 1024
    dropout: float = 0.1
    condition_dropout: float = 0.1
    code_noise: float = 0.0
    grid_positions: bool = True
    user_every_code: bool = True
    prior_epochs: int = 40
    prior_batch_size: int | None = None  # None: batch_size
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100

    def __post_init__(self):
        self.channels = _int_list(self.channels, "channels")
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.n_epochs is not None:
            raise ConfigError("n_epochs does not apply here: the stages train for "
                              "tokenizer_epochs and prior_epochs; set those instead")
        if self.resume:
            raise ConfigError("resume: a spectrogram generator run cannot be resumed; train "
                              "the unfinished stage again")
        for name in ("tokenizer_epochs", "prior_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.adversarial_start is None:
            self.adversarial_start = self.tokenizer_epochs // 3
        if self.adversarial_weight and self.adversarial_start >= self.tokenizer_epochs:
            raise ConfigError(f"adversarial_start {self.adversarial_start} is past the last of "
                              f"{self.tokenizer_epochs} tokenizer_epochs, so the critic would "
                              "never train; start it earlier")
        if self.dataset == "image-folder" and not self.data_path:
            raise ConfigError("dataset='image-folder' reads the folder given by data_path; pass "
                              "data_path (e.g. the out folder of 'timetok doppler simulate')")
        if self.save_path is None:
            raise ConfigError("save_path is needed: the folder the run writes into")
        if "prior" in self.stages() and self.d_model % self.n_heads:
            # checked here, before the tokenizer stage trains, not when the prior starts
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads "
                              f"({self.n_heads})")

    def stages(self) -> list[str]:
        return ["tokenizer", "prior"] if self.stage == "both" else [self.stage]

    def tokenizer_config(self):
        """The tokenizer's model config (stage one)."""
        from timetok.doppler.model import SpectrogramTokenizerConfig

        return SpectrogramTokenizerConfig(
            image_size=self.image_size, channels=self.channels, n_res_layers=self.n_res_layers,
            embedding_dim=self.embedding_dim, num_embeddings=self.codebook_size,
            quantizer=self.quantizer, decay=self.decay,
            dead_code_threshold=self.dead_code_threshold)

    def stage_options(self, epochs: int):
        """The run options of a stage of ``epochs``."""
        return dataclasses.replace(self.run_options(), n_epochs=epochs)

    def datamodule(self):
        """The images, split within each user."""
        from timetok.doppler.data import SpectrogramDataModule

        return SpectrogramDataModule(self.dataset, self.data_path, self.data_dir,
                                     self.image_size, self.resize, self.val_share,
                                     self.test_share, self.seed, self.batch_size,
                                     self.num_workers)



@dataclass
class EvaluateConfig(RunConfig):
    """``timetok doppler evaluate``'s settings. ``model``: a generator folder or the
    ``save_path`` of a training run; the sampling settings are the generator's
    (``unconditional`` samples every image after the null prefix, each still counted as its
    intended user's: the floor conditioning must lift); the user classifier is loaded from
    ``classifier`` when that folder holds one, else trained for ``classifier_epochs`` (and
    saved there, or in ``out/classifier``). The run settings that apply are the
    classifier's: ``seed`` (which also draws the samples), ``threads``, ``progress``,
    ``amp``, ``max_steps``, ``max_time``."""

    model: str | None = None
    data_path: str | None = None  # None: the folder the model was trained on
    data_dir: str | None = None
    generated: str | None = None  # a 'doppler generate' folder; None: sample anew
    samples: int | None = None  # per user; None: the users' real test images, at least 10
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    guidance_scale: float | None = None
    unconditional: bool = False
    no_cache: bool = False
    batch_size: int = 64
    device: str = "auto"
    classifier_epochs: int = 40
    classifier: str | None = None
    out: str | None = None  # None: MODEL/evaluation
    seed: int = 0

    def __post_init__(self):
        if not self.model:
            raise ConfigError("model must name a generator folder, or the save_path of "
                              "'timetok doppler train'")
        if self.n_epochs is not None:
            raise ConfigError("n_epochs does not apply here; set classifier_epochs")
        if self.classifier_epochs < 1:
            raise ConfigError(f"classifier_epochs must be >= 1, got {self.classifier_epochs}")
        if self.samples is not None and self.samples < 2:
            raise ConfigError(f"samples must be >= 2, got {self.samples}")
        if self.generated and (self.unconditional or self.guidance_scale is not None):
            raise ConfigError("generated images are read as they are; drop unconditional and "
                              "guidance_scale, or generated")

    def sampling(self):
        from timetok.core.nn.sampling import Sampling

        return Sampling(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    def run_options(self):
        """The user classifier's training run."""
        from timetok.core.devices import resolve_device
        from timetok.core.train.runner import RunOptions

        device = str(resolve_device(self.device))
        index = device.partition(":")[2]
        return RunOptions(
            n_epochs=self.classifier_epochs, max_steps=self.max_steps, max_time=self.max_time,
            accelerator="gpu" if device.startswith("cuda") else "cpu",
            devices=f"{index}," if index else "1", amp=self.amp, seed=self.seed,
            progress=self.progress, threads=self.threads, checkpoint_every=10**9)

    def model_dir(self) -> Path:
        return resolve_generator(self.model)

    def out_dir(self) -> Path:
        """Where the report goes: ``out``, or ``evaluation`` in the model's folder."""
        return Path(self.out) if self.out else self.model_dir() / "evaluation"
