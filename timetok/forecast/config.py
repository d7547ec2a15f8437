"""The forecaster's stage configs: one dataclass per training stage.

Each field is a flag of the stage's command with underscores (``--context-points`` is
``context_points``), its default the flag's, so one YAML file under ``configs/forecast/``
serves ``timetok forecast <stage> --config FILE`` and ``<Config>.from_yaml(FILE)`` alike.
This module imports nothing heavy: the command line reads its defaults from here.

>>> FinetuneConfig(model="runs/lm-etth1", horizon="96,192").horizon
[96, 192]
>>> FinetuneConfig(model="m", heads="decoder").learning_rate()
0.001
"""

from __future__ import annotations

from dataclasses import dataclass, field

from timetok.core.config import RunConfig
from timetok.core.errors import ConfigError

FREEZE_ALIASES = {"all-but-head": "head-only"}  # old policy names, still accepted


def _positive_ints(value, name: str) -> list[int]:
    """``96``, ``"96,192"`` or ``[96, "192"]`` -> ``[96, 192]``; refuses an empty list."""
    items = value if isinstance(value, list | tuple) else [value]
    parts = [part for item in items for part in str(item).replace(",", " ").split()]
    given = ",".join(str(item) for item in items)
    if not parts:
        raise ConfigError(f"{name} must name at least one value, got {given!r}; pass positive "
                          "integers separated by commas, e.g. 96 or 96,192")
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"{name} takes positive integers separated by commas (e.g. 96,192), "
                          f"got {given!r}")
    return [int(part) for part in parts]


def horizon_steps(value) -> dict[int, int]:
    """``"720:150,96:1500"`` or ``{720: 150, 96: 1500}`` -> ``{720: 150, 96: 1500}``."""
    if isinstance(value, dict):
        pairs = [(str(h), str(s)) for h, s in value.items()]
    else:
        pairs = [tuple(part.split(":", 1)) if ":" in part else (part, "")
                 for part in str(value).replace(",", " ").split()]
    if not all(h.strip().isdigit() and s.strip().isdigit() and int(s) > 0 for h, s in pairs):
        raise ConfigError(f"horizon_steps takes horizon:steps pairs separated by commas, e.g. "
                          f"720:150,96:1500, got {value!r}")
    return {int(h): int(s) for h, s in pairs}


@dataclass
class PretrainConfig(RunConfig):
    """Next-code pretraining over a frozen tokenizer (:func:`timetok.forecast.recipe.pretrain`).

    ``save_path`` defaults to ``runs/lm-DATASET``.
    """

    tokenizer: str = ""  # the trained tokenizer's folder (frozen throughout)
    dataset: str = "etth1"  # one name, or several separated by commas
    data_path: str | None = None
    data_dir: str | None = None
    context_points: int = 512
    max_horizon: int = 720  # pretraining windows span the context and this many steps
    batch_size: int = 64
    stride: int = 1
    val_stride: int = 1
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 8
    d_ff: int = 256
    dropout: float = 0.1
    attn_dropout: float = 0.0
    code_embedding: str = "codebook"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200

    def __post_init__(self):
        if not self.tokenizer or not str(self.tokenizer).strip():
            raise ConfigError("tokenizer must name the trained tokenizer's folder")
        for name in ("context_points", "max_horizon", "batch_size", "stride", "val_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")

    def default_save_path(self) -> str:
        return self.save_path or f"runs/lm-{self.dataset.replace(',', '+')}"


@dataclass
class FinetuneConfig(RunConfig):
    """Finetuning a pretrained language model to forecast, one model per horizon
    (:func:`timetok.forecast.recipe.finetune`).

    ``horizon`` takes a list (or ``"96,192"``); ``horizon_steps`` gives some horizons their
    own step budget (``{720: 150}`` or ``"720:150"``: longer horizons cost more per step).
    ``lr`` None: 1e-3 for the decoder head alone, else 1e-4. ``save_path`` defaults to
    ``runs/ft-DATASET``; each horizon's model goes to its ``H<horizon>`` folder.
    """

    model: str = ""  # the pretrained language model's folder (or a finetuned one's)
    dataset: str = "etth1"
    data_path: str | None = None
    data_dir: str | None = None
    horizon: list[int] = field(default_factory=lambda: [96])
    horizon_steps: dict[int, int] = field(default_factory=dict)
    chain: bool = False
    heads: str = "decoder,linear"
    freeze_policy: str = "tokenizer"
    temperature: float = 1.0
    linear_skip: bool = True
    skip_scale: str = "auto"
    trained_skip: bool = True
    blend: str = "channel"
    batch_size: int = 64
    stride: int = 1
    val_stride: int = 1
    lr: float | None = None
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    patience: int | None = 3

    def __post_init__(self):
        if not self.model or not str(self.model).strip():
            raise ConfigError("model must name the pretrained language model's folder")
        self.horizon = _positive_ints(self.horizon, "horizon")
        repeated = sorted({h for h in self.horizon if self.horizon.count(h) > 1})
        if repeated:
            raise ConfigError(f"horizon must name each horizon once, got {repeated} more than "
                              "once")
        self.horizon_steps = horizon_steps(self.horizon_steps or {})
        extra = sorted(set(self.horizon_steps) - set(self.horizon))
        if extra:
            raise ConfigError(f"horizon_steps names horizons {extra} that horizon does not "
                              f"list ({self.horizon}); drop them or add them to horizon")
        self.freeze_policy = FREEZE_ALIASES.get(self.freeze_policy, self.freeze_policy)
        if not self.head_list():
            raise ConfigError(f"heads names no head ({self.heads!r}); pass decoder, linear or "
                              "both")
        if self.blend not in ("channel", "shared"):
            raise ConfigError(f"blend must be channel or shared, got {self.blend!r}")
        for name in ("batch_size", "stride", "val_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")

    def head_list(self) -> list[str]:
        return [h.strip() for h in str(self.heads).split(",") if h.strip()]

    def learning_rate(self) -> float:
        """``lr``, else the default: 1e-3 for the decoder head alone, whose query token and
        soft lookup learn from scratch (at 1e-4 it was still far from converged after the
        runs a benchmark affords); 1e-4 otherwise."""
        if self.lr is not None:
            return self.lr
        return 1e-3 if self.head_list() == ["decoder"] else 1e-4

    def default_save_path(self) -> str:
        return self.save_path or f"runs/ft-{self.dataset}"

    def steps_for(self, horizon: int) -> int:
        """The step budget of ``horizon``'s run: its own, else ``max_steps``."""
        return self.horizon_steps.get(horizon, self.max_steps)
