"""System 2: forecasting over the frozen tokenizer's codes with a code language model.

Every channel is a sequence of its own. A window ``[B, L, C]`` becomes ``B*C`` code
sequences of ``N = L/f`` codes; the code language model (:mod:`timetok.core.nn.code_lm`)
learns the next code (pretraining). Finetuning adds two forecast heads:

- ``decoder``: learned query tokens after the context yield code distributions for the
  ``ceil(H/f)`` future positions; their softmax-weighted codebook vectors (a *soft*
  lookup, differentiable unlike an argmax) are decoded together with the context's codes
  by the frozen tokenizer decoder, and RevIN is inverted with the context's statistics;
- ``linear``: the context positions' hidden states, flattened, through one linear layer
  to ``H`` steps (PatchTST-style). With ``linear_skip`` (TiDE's global residual), a linear
  map from the context straight to the horizon is added: the ridge least-squares map over
  the training windows (:mod:`timetok.core.nn.lstsq`, its penalty chosen on validation
  windows), fitted once and kept fixed (Adam's per-weight steps would only wander from
  the optimum), while the hidden-state layer starts at zero, so finetuning starts from
  the best linear forecast and learns what the codes add to it. The map works on the
  RevIN scale (RLinear, the deviation floored so that a flat context cannot blow it up)
  or on the standardised scale (DLinear's class); ``skip_scale="auto"`` fits both and
  keeps the one with the lower validation MSE. Rival maps fitted otherwise (a DLinear
  trained by its recipe, whose early stopping regularises differently) compete on the
  same validation windows.

With the skip, the decoder head's forecast also comes blended with it: ``blend`` is
``skip + w * (decoder - skip)``, one weight in [0, 1] per horizon step and channel (or per
step, shared by the channels), fitted by least squares on validation windows once the
decoder head is trained (stacking): the two err differently, so the blend can beat both.
Each weight pools the steps within ``BLEND_SPAN // 2`` of its own, which steadies it
where validation windows are few; weights per channel let the decoder head count only
on the channels where it helps.

A horizon that is not a multiple of ``f`` is padded to the next multiple and cut back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from timetok.core.errors import ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.nn.code_lm import CodeLanguageModel, CodeLMConfig
from timetok.core.nn.lstsq import LinearFit, fit_linear, linear_revin
from timetok.core.nn.revin import RevinStats
from timetok.core.nn.sampling import Sampling
from timetok.core.outputs import ModelOutput
from timetok.tokenizer.model import TokenizerConfig, TokenizerModel

HEADS = ("decoder", "linear")
CODE_EMBEDDINGS = ("codebook", "learned")
SKIP_SCALES = ("auto", "revin", "standard")
SKIP_FITS = ("ridge", "trained")
BLEND_SPAN = 25  # steps pooled by each blend weight (centred; fewer at the horizon's ends)


@dataclass(frozen=True)
class ForecasterConfig:
    """Defaults follow the reference run: d_model 128, 3 layers, 8 heads, d_ff 256."""

    tokenizer: TokenizerConfig  # the frozen tokenizer's (a dict is converted)
    context_points: int = 512
    horizon: int = 0  # 0: a pretrained language model without forecast heads
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 8
    d_ff: int = 256
    dropout: float = 0.1  # on embeddings and residual branches
    # On attention probabilities: off, as in PatchTST. On CPU it also forces SDPA's unfused
    # path and a Bernoulli mask per head and position pair, a third of each training step.
    attn_dropout: float = 0.0
    code_embedding: str = "codebook"
    heads: list[str] = field(default_factory=lambda: list(HEADS))
    temperature: float = 1.0  # of the soft codebook lookup
    # A fixed context -> horizon linear map: the linear head adds it, the decoder head's
    # forecast is blended with it (the ``blend`` output).
    linear_skip: bool = False
    skip_scale: str = "auto"  # its scale: revin, standard, or auto (fitting picks one)
    # The blend's weights: one per step shared by every channel (1), or one per step and
    # channel of the data the model forecasts (its channel count).
    blend_channels: int = 1
    # The longest future the model forecasts or samples. Pretraining windows span the
    # context and this many steps, so every position sampling reaches is trained.
    max_horizon: int = 720
    # How the skip was fitted: ridge least squares, or a trained DLinear folded into one map
    # (kept where its validation MSE was the lower; see ``init_linear_skip``).
    skip_fit: str = "ridge"

    def __post_init__(self):
        if isinstance(self.tokenizer, dict):  # as read from config.json
            object.__setattr__(self, "tokenizer", TokenizerConfig(**self.tokenizer))
        if not isinstance(self.tokenizer, TokenizerConfig):
            raise ConfigError(f"tokenizer must be a TokenizerConfig, got {self.tokenizer!r}")
        tok = self.tokenizer
        if tok.quantizer == "rvq":
            raise ConfigError(
                "the language model needs one code per position; train the tokenizer with "
                "quantizer='vq' or quantizer='fsq', not 'rvq'"
            )
        if tok.revin_affine:
            raise ConfigError(
                "the forecaster reads channels independently and needs a tokenizer without "
                "per-channel RevIN weights; retrain the tokenizer with revin_affine=False"
            )
        if self.context_points % tok.compression:
            raise ConfigError(
                f"context of {self.context_points} is not a multiple of the tokenizer's "
                f"compression {tok.compression}; use a multiple of {tok.compression}"
            )
        if self.horizon < 0 or self.horizon > self.max_horizon:
            raise ConfigError(
                f"horizon must lie in [0, max_horizon={self.max_horizon}], got {self.horizon}"
            )
        if self.code_embedding not in CODE_EMBEDDINGS:
            raise ConfigError(
                f"code embedding must be one of {', '.join(CODE_EMBEDDINGS)}, "
                f"got {self.code_embedding!r}"
            )
        unknown = [h for h in self.heads if h not in HEADS]
        if unknown or not self.heads:
            raise ConfigError(f"heads must be among {', '.join(HEADS)}, got {self.heads}")
        if self.skip_scale not in SKIP_SCALES:
            raise ConfigError(
                f"skip scale must be one of {', '.join(SKIP_SCALES)}, got {self.skip_scale!r}"
            )
        if self.skip_fit not in SKIP_FITS:
            raise ConfigError(
                f"skip fit must be one of {', '.join(SKIP_FITS)}, got {self.skip_fit!r}"
            )
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.blend_channels < 1:
            raise ConfigError(f"blend_channels must be >= 1, got {self.blend_channels}")
        self.lm_config(vocab_size=2)  # the language model's own checks

    def lm_config(self, vocab_size: int) -> CodeLMConfig:
        """The code language model's settings: positions for the context and the longest
        horizon, no prefix."""
        return CodeLMConfig(
            vocab_size=vocab_size, max_codes=self.n_context + self.n_future(self.max_horizon),
            d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
            d_ff=self.d_ff, dropout=self.dropout, attn_dropout=self.attn_dropout,
        )

    @property
    def compression(self) -> int:
        return self.tokenizer.compression

    @property
    def n_context(self) -> int:
        """Code positions in the context."""
        return self.context_points // self.compression

    def n_future(self, horizon: int) -> int:
        """Code positions covering ``horizon`` steps (padded up to whole codes)."""
        return math.ceil(horizon / self.compression)

    @property
    def pretrain_future(self) -> int:
        """Steps after the context in a pretraining window: ``max_horizon`` in whole codes."""
        return self.n_future(self.max_horizon) * self.compression


@dataclass(kw_only=True)
class ForecastOutput(ModelOutput):
    """``loss``: the sum of the heads' MSE (None without targets)."""

    predictions: dict[str, Tensor]  # output -> [B, H, C], standardised scale
    losses: dict[str, Tensor]  # head -> MSE; empty without targets


class TokenForecaster(PretrainedModel):
    """A code language model over a frozen tokenizer, with forecast heads.

    >>> tok = TokenizerConfig(n_channels=1, context_points=64, embedding_dim=8,
    ...                       block_hidden_size=16, res_hidden_size=8)
    >>> model = TokenForecaster(ForecasterConfig(tokenizer=tok, context_points=64,
    ...                                          horizon=16, d_model=32, n_heads=4))
    >>> model.predict(torch.randn(2, 64, 3))["linear"].shape
    torch.Size([2, 16, 3])
    """

    model_type: ClassVar[str] = "forecaster"
    config_class: ClassVar[type] = ForecasterConfig

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        self.config = config
        self.tokenizer = TokenizerModel(config.tokenizer)
        # Frozen from the start: Lightning does not call train()/eval() on the whole model
        # before fitting, so the quantizer's EMA buffers would otherwise update.
        self.tokenizer.requires_grad_(False).eval()
        self.lm = CodeLanguageModel(config.lm_config(self.tokenizer.codebook_size))
        # One learned token stands in for every not-yet-known future position.
        self.query = nn.Parameter(torch.randn(config.d_model) * 0.02)
        linear = bool(config.horizon) and "linear" in config.heads
        self.linear_head = (
            nn.Linear(config.n_context * config.d_model, config.horizon) if linear else None
        )
        self.has_skip = bool(config.horizon) and config.linear_skip
        self.has_blend = self.has_skip and "decoder" in config.heads
        if self.has_skip:  # buffers: fitted in closed form, saved, never trained
            self.register_buffer("skip_weight", torch.zeros(config.horizon,
                                                            config.context_points))
            self.register_buffer("skip_bias", torch.zeros(config.horizon))
        if self.has_blend:  # the decoder's share per step and channel; 0 until fitted
            self.register_buffer("blend_weight", torch.zeros(config.horizon,
                                                             config.blend_channels))

    @property
    def outputs(self) -> list[str]:
        """The names of the point forecasts ``predict`` returns."""
        return [*self.config.heads, *(["blend"] if self.has_blend else [])]

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: no EMA updates, no dead-code restarts, ever
        return self

    @torch.no_grad()
    def init_code_embedding(self) -> None:
        """Start code embeddings from the tokenizer's codebook, randomly projected."""
        codebook = self.tokenizer.quantizer.codebook.float()  # (K, D)
        projection = torch.randn(codebook.shape[1], self.config.d_model) / math.sqrt(
            codebook.shape[1]
        )
        vectors = codebook @ projection
        vectors = (vectors - vectors.mean()) / vectors.std().clamp_min(1e-6) * 0.02
        self.lm.code_embedding.weight.copy_(vectors)

    @torch.no_grad()
    def init_linear_skip(self, windows, val_windows=None,
                         rivals: Sequence[LinearFit] = ()) -> LinearFit:
        """Fit the skip by ridge least squares on training ``windows`` (pairs
        ``([L, C], [H, C])``, channels read independently; :func:`fit_linear`) and zero the
        hidden-state layer, if any. With ``val_windows`` the penalty is the one with the
        lowest validation MSE (else a fixed 1e-3), and with ``skip_scale="auto"`` both
        scales are fitted and the lower validation MSE decides. ``rivals`` are maps on the
        standardised scale fitted otherwise (e.g. a trained DLinear,
        :func:`timetok.forecast.baselines.trained_linear_fit`), with their MSE over the same
        validation windows: the lowest MSE of all is kept. The config records the choice.
        Returns the kept fit."""
        if not self.has_skip:
            raise ConfigError("this model has no linear skip; finetune with linear_skip=True")
        scales = [self.config.skip_scale]
        if scales == ["auto"]:  # without RevIN both scales are one
            scales = ["revin", "standard"] if self.tokenizer.config.revin else ["standard"]
        if (len(scales) > 1 or rivals) and val_windows is None:
            raise ConfigError("choosing the skip's scale or fit needs validation windows; "
                              "pass them, or set skip_scale to revin or standard and pass "
                              "no rival maps")
        shape = (self.config.context_points + 1, self.config.horizon)
        for rival in rivals:
            if tuple(rival.weights.shape) != shape or rival.val_mse is None:
                raise ConfigError(f"a rival skip map must be {shape[0]} x {shape[1]} with a "
                                  f"validation MSE, got {tuple(rival.weights.shape)}")
        candidates = [(scale, "ridge", fit_linear(
            windows, linear_revin() if self._skip_on_revin(scale) else None,
            val_windows=val_windows)) for scale in scales]
        candidates += [("standard", "trained", rival) for rival in rivals]
        scale, how, kept = (candidates[0] if len(candidates) == 1
                            else min(candidates, key=lambda c: c[2].val_mse))
        self.config = dataclasses.replace(self.config, skip_scale=scale, skip_fit=how)
        self.skip_weight.copy_(kept.weights[:-1].T)
        self.skip_bias.copy_(kept.weights[-1])
        if self.linear_head is not None:
            self.linear_head.weight.zero_()
            self.linear_head.bias.zero_()
        return kept

    def _skip_on_revin(self, scale: str | None = None) -> bool:
        """Whether the skip (of ``scale``, default the config's) works on the RevIN scale:
        :func:`linear_revin`'s, whose floored deviation a flat context cannot blow up."""
        return (scale or self.config.skip_scale) == "revin" and self.tokenizer.config.revin

    @torch.no_grad()
    def fit_blend(self, windows, batch_size: int = 256) -> dict[str, float]:
        """Fit the blend weights on validation ``windows``, pairs ``([L, C], [H, C])``, by
        least squares, each over the steps within ``BLEND_SPAN // 2`` of its own and clipped
        to [0, 1]. With weights per channel, ``C`` is the model's ``blend_channels``;
        shared weights take any ``C`` (channel-independent windows too).

        Returns the MSE over ``windows`` of the skip, the decoder head and the blend, and
        the mean weight.
        """
        from torch.utils.data import DataLoader

        if not self.has_blend:
            raise ConfigError("only a model with the decoder head and a linear skip blends; "
                              "finetune with both heads and linear_skip=True")
        if not len(windows):
            raise ConfigError("no validation windows to fit the blend on; lower val_stride")
        was_training = self.training
        self.eval()
        # Per step and channel: sums of gap * miss, gap^2 and miss^2, where gap is
        # decoder - skip and miss is y - skip; the blend's error is miss - w * gap.
        sums, n = 0, 0
        for x, y in DataLoader(windows, batch_size=batch_size):
            out = self._forecasts(x)
            gap, miss = (out["decoder"] - out["skip"]).double(), (y - out["skip"]).double()
            sums = sums + torch.stack([gap * miss, gap * gap, miss * miss]).sum(dim=1)
            n += y.numel()
        self.train(was_training)
        if self.config.blend_channels == 1:
            sums = sums.sum(dim=2, keepdim=True)
        cross, gap2, miss2 = sums  # (H, blend_channels)
        pooled = [_window_sums(t, BLEND_SPAN) for t in (cross, gap2)]
        weight = (pooled[0] / pooled[1].clamp_min(1e-12)).clamp(0, 1)
        self.blend_weight.copy_(weight.float())

        def mse(w) -> float:  # of skip + w * gap, from the sums alone
            return float((miss2 - 2 * w * cross + w * w * gap2).sum()) / n

        return {"skip": mse(0), "decoder": mse(1), "blend": mse(weight),
                "weight": float(weight.mean())}

    # --- tokenisation -------------------------------------------------------------------

    @torch.no_grad()
    def tokenize(self, x: Tensor, future: Tensor | None = None
                 ) -> tuple[Tensor, RevinStats | None]:
        """``[B, T, C]`` -> codes ``[B*C, T/f]`` and each series' RevIN statistics.

        A ``future`` ``[B, T', C]`` is encoded on its context's scale, as sampling
        continues it, and its codes follow the context's: ``[B*C, (T+T')/f]``.
        """
        codes, stats = self.tokenizer.encode_series(rearrange(x, "b t c -> (b c) t"))
        if future is not None and future.shape[1]:
            later, _ = self.tokenizer.encode_series(rearrange(future, "b t c -> (b c) t"),
                                                    stats)
            codes = torch.cat([codes, later], dim=1)
        return codes, stats

    def decode_future(self, context_codes: Tensor, future_latents: Tensor,
                      stats: RevinStats | None, horizon: int) -> Tensor:
        """Context codes ``[S, N]`` + future latents ``[S, F, D]`` -> ``[S, horizon]``.

        Both are decoded together so the decoder's receptive field sees the context.
        """
        latents = torch.cat([self.tokenizer.quantizer.decode_indices(context_codes),
                             future_latents], dim=1)
        y = self.tokenizer.decode_latents(latents, 1)  # (S, (N+F)*f, 1), normalised
        y = self.tokenizer.denormalize(y, stats)
        start = self.config.context_points
        return y[:, start:start + horizon, 0]

    # --- forecasting --------------------------------------------------------------------

    def _head_inputs(self, codes: Tensor, n_future: int) -> Tensor:
        """Hidden states of the context followed by ``n_future - 1`` query tokens."""
        embeds = self.lm.embed(codes)
        if n_future > 1:
            queries = self.query.expand(len(codes), n_future - 1, -1)
            embeds = torch.cat([embeds, queries], dim=1)
        return self.lm.hidden_states(embeds)

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """The language model's last-layer states over each channel's context codes:
        standardised contexts ``[B, L, C]`` -> ``[B, C, N, d_model]`` (``N = L / f``)."""
        self._check_context(x)
        codes, _ = self.tokenize(x)
        hidden = self.lm.hidden_states(self.lm.embed(codes))  # (B*C, N, d)
        return rearrange(hidden, "(b c) n d -> b c n d", b=x.shape[0])

    def _check_context(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.config.context_points:
            raise ConfigError(
                f"the model reads contexts [B, {self.config.context_points}, C], got "
                f"{list(x.shape)}; pass the last {self.config.context_points} rows"
            )

    def predict(self, x: Tensor, skip: bool = False) -> dict[str, Tensor]:
        """Point forecasts ``{output: [B, H, C]}`` for standardised contexts ``[B, L, C]``:
        one per head, ``blend`` where the model has one (see ``outputs``) and, with
        ``skip``, the fixed linear map's alone (where the model has it)."""
        out = self._forecasts(x)
        if not skip:
            out.pop("skip", None)
        return out

    def _skip(self, flat: Tensor) -> Tensor:
        """The fixed linear forecast ``[S, H]`` of contexts ``[S, L]``, standardised scale."""
        if self._skip_on_revin():
            revin = linear_revin()
            normed, stats = revin.normalize(flat[..., None])
            y = F.linear(normed[..., 0], self.skip_weight, self.skip_bias)
            return revin.denormalize(y[..., None], stats)[..., 0]
        return F.linear(flat, self.skip_weight, self.skip_bias)

    def _forecasts(self, x: Tensor, blend: bool = True) -> dict[str, Tensor]:
        """``predict``'s forecasts (without the blend unless ``blend``), and the skip's alone
        as ``skip`` where there is one."""
        horizon = self.config.horizon
        if not horizon:
            raise ConfigError("this model has no forecast heads; finetune it with horizon=H")
        self._check_context(x)
        blend = blend and self.has_blend
        if blend and self.config.blend_channels not in (1, x.shape[2]):
            raise ConfigError(
                f"the model's blend has weights for {self.config.blend_channels} channels, the "
                f"input has {x.shape[2]}; pass series with the columns it was finetuned on"
            )
        n_series = x.shape[0] * x.shape[2]
        codes, stats = self.tokenize(x)
        n_context, n_future = self.config.n_context, self.config.n_future(horizon)
        hidden = self._head_inputs(codes, n_future if "decoder" in self.config.heads else 0)
        out = {}
        if self.has_skip:
            out["skip"] = self._skip(rearrange(x, "b t c -> (b c) t"))
        if "decoder" in self.config.heads:
            logits = self.lm.lm_head(hidden[:, n_context - 1:])  # (S, F, K)
            probs = torch.softmax(logits / self.config.temperature, dim=-1)
            latents = probs @ self.tokenizer.quantizer.codebook  # soft lookup, (S, F, D)
            out["decoder"] = self.decode_future(codes, latents, stats, horizon)
        if self.linear_head is not None:
            # The hidden states' part on the codes' RevIN scale, in the context's units.
            y = self.linear_head(hidden[:, :n_context].reshape(n_series, -1))  # (S, H)
            if self.has_skip:
                out["linear"] = out["skip"] + (y * stats.std[..., 0] if stats is not None
                                               else y)
            else:
                out["linear"] = self.tokenizer.denormalize(y[..., None], stats)[..., 0]
        out = {name: rearrange(y, "(b c) h -> b h c", b=x.shape[0]) for name, y in out.items()}
        if blend:  # weights (H, C) or (H, 1)
            out["blend"] = out["skip"] + self.blend_weight * (out["decoder"] - out["skip"])
        return out

    def forward(self, x: Tensor, targets: Tensor | None = None) -> ForecastOutput:
        """Contexts ``[B, L, C]`` -> each head's forecast ``[B, H, C]``; with the true
        futures ``targets`` ``[B, H, C]`` also each head's MSE and their sum as ``loss``
        (the blend's weights are fitted after training, so it has none; and as training
        windows may hold one channel each, it is not computed)."""
        predictions = self._forecasts(x, blend=False)
        predictions.pop("skip", None)
        if targets is None:
            return ForecastOutput(predictions=predictions, losses={})
        losses = {head: F.mse_loss(predictions[head], targets) for head in self.config.heads}
        return ForecastOutput(loss=sum(losses.values()), predictions=predictions, losses=losses)

    @torch.no_grad()
    def sample(
        self,
        x: Tensor,
        horizon: int,
        num_samples: int = 100,
        sampling: Sampling = Sampling(),
        use_cache: bool = True,
    ) -> Tensor:
        """Sample future codes autoregressively -> paths ``[B, num_samples, horizon, C]``
        (``sampling.temperature=0``: greedy)."""
        if not 1 <= horizon <= self.config.max_horizon:
            raise ConfigError(
                f"horizon must lie in [1, max_horizon={self.config.max_horizon}], got {horizon}"
            )
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        batch, _, channels = x.shape
        codes, stats = self.tokenize(x)  # (B*C, N)
        future = self.lm.generate(codes, self.config.n_future(horizon), sampling=sampling,
                                  use_cache=use_cache, repeats=num_samples)  # (B*C*S, F)
        codes = codes.repeat_interleave(num_samples, dim=0)  # (B*C*S, N)
        if stats is not None:
            stats = RevinStats(*(s.repeat_interleave(num_samples, dim=0) for s in stats))
        latents = self.tokenizer.quantizer.decode_indices(future)
        paths = self.decode_future(codes, latents, stats, horizon)  # (B*C*S, H)
        return rearrange(paths, "(b c s) h -> b s h c", b=batch, c=channels)


def _window_sums(t: Tensor, span: int) -> Tensor:
    """Sums of ``t`` ``[H, C]`` over the rows within ``span // 2`` of each row."""
    rows = len(t)
    total = F.pad(t.cumsum(0), (0, 0, 1, 0))
    index = torch.arange(rows)
    return (total[(index + span // 2 + 1).clamp(max=rows)]
            - total[(index - span // 2).clamp(min=0)])
