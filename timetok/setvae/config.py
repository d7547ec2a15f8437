"""What each SeqSetVAE stage reads: one config per recipe (:mod:`timetok.setvae.recipe`).

Field names are the flag names of ``timetok setvae <stage>`` with underscores and their
defaults are the flags' defaults, so a YAML file under ``configs/setvae/`` serves both
``timetok setvae pretrain --config FILE`` and ``PretrainConfig.from_yaml(FILE)``.

>>> PretrainConfig.from_dict({"d_model": 64, "max_steps": 5}).model_settings()["d_model"]
64
"""

from __future__ import annotations

from dataclasses import dataclass

from timetok.core.config import RunConfig

# The model's sizes: set when pretraining, or when finetuning from scratch without a model.
SIZES = ("d_model", "latent_dim", "set_layers", "inducing", "n_heads", "seq_layers", "d_ff",
         "dropout")
VAE = ("beta", "beta_warmup_steps", "free_bits", "value_weight", "observed_weight")


def set_names(sets: str | list[str] | None) -> tuple[str, ...] | None:
    """PhysioNet sets given as ``"a,b"`` or a list -> a tuple of names (None: every set)."""
    if sets is None:
        return None
    names = sets.split(",") if isinstance(sets, str) else sets
    return tuple(str(name).strip() for name in names if str(name).strip())


@dataclass
class StageConfig(RunConfig):
    """What both training stages read: where the stays come from, how they are split
    and cut into sets, and the optimiser (AdamW, warm-up then cosine decay).

    ``dataset``: ``physionet2012`` or ``records-csv`` (a long table at ``data_path``);
    ``sets``: PhysioNet sets (``"a,b"`` or a list; all by default); ``limit``: the first N
    stays in the order read, before splitting; ``split``: one of the five fixed 80/10/10
    splits; ``bucket``: one set per distinct time (``"exact"``) or per so many hours.
    """

    dataset: str = "physionet2012"
    data_dir: str | None = None
    data_path: str | None = None
    sets: str | list[str] | None = None
    limit: int | None = None
    split: int = 0
    bucket: str | float = "exact"
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100

    def run_folder(self, stage: str) -> str:
        """``save_path``, or ``runs/setvae[-ft]-DATASET``."""
        return self.save_path or f"runs/setvae{stage}-{self.dataset}"


@dataclass
class PretrainConfig(StageConfig):
    """``timetok setvae pretrain``: the set-VAE's sizes and its loss (see
    :class:`timetok.setvae.model.SeqSetVAEConfig`) beside the data and the run."""

    d_model: int = 128
    latent_dim: int = 32
    set_layers: int = 2
    inducing: int = 0
    n_heads: int = 4
    seq_layers: int = 4
    d_ff: int = 256
    dropout: float = 0.1
    beta: float = 0.1
    beta_warmup_steps: int = 1000
    free_bits: float = 0.05
    value_weight: float = 1.0
    observed_weight: float = 1.0

    def model_settings(self) -> dict:
        return {name: getattr(self, name) for name in (*SIZES, *VAE)}


@dataclass
class FinetuneConfig(StageConfig):
    """``timetok setvae finetune``: a mortality head on a pretrained folder (``model``) or,
    with ``scratch``, on new weights.

    ``freeze``: ``none`` (everything trains), ``head-only`` (the head and the logvar
    gate), ``partial`` (the sequence model too) or a comma list of parts; None:
    ``head-only``, or ``none`` with ``scratch``. ``pos_weight``: a number or ``"auto"``.
    The sizes apply to ``scratch`` without ``model`` only (None: the pretraining defaults).
    """

    model: str | None = None
    feature: str = "mu"
    summaries: bool = True
    freeze: str | None = None
    pos_weight: float | str = 1.0
    loss: str = "ce"
    focal_gamma: float = 2.0
    allow_partial: bool = False
    scratch: bool = False
    d_model: int | None = None
    latent_dim: int | None = None
    set_layers: int | None = None
    inducing: int | None = None
    n_heads: int | None = None
    seq_layers: int | None = None
    d_ff: int | None = None
    dropout: float | None = None

    def model_settings(self) -> dict:
        """The sizes given (the others keep the model's defaults)."""
        return {name: getattr(self, name) for name in SIZES if getattr(self, name) is not None}


@dataclass
class EvaluateConfig:
    """``timetok setvae evaluate``: a finetuned folder (``model``) on the test (or ``val``)
    stays of a split. The data settings default to the model's own (None); ``out``: the
    report folder (None: ``MODEL/eval-DATASET-splitK``); ``baseline``: also fit a logistic
    regression on per-variable stay summaries of the split's training stays and score it
    on the same stays (scikit-learn); ``device``: ``auto``, ``cpu``, ``cuda`` ..."""

    model: str
    dataset: str | None = None
    data_dir: str | None = None
    data_path: str | None = None
    sets: str | list[str] | None = None
    limit: int | None = None
    split: int | None = None
    stays: str = "test"
    bins: int = 10
    batch_size: int = 64
    out: str | None = None
    baseline: bool = True
    device: str = "auto"
