"""System 5: SeqSetVAE, a sequence of set-VAEs over irregular ICU stays, then classification.

A stay is a sequence of S sets (:class:`~timetok.core.data.records.SetBatch`); set t holds the
observations ``(time, variable, value)`` of one time or bucket. Pretraining needs no label:

- **Set encoder** (per set, permutation-invariant): observation k of variable v becomes
  ``variable[v] + value_direction[v] * value + offset_proj(time - set_time)`` -- each
  variable owns a token and a direction along which its standardised value moves it; the
  offset places it within its bucket (0 for exact times). ``set_layers`` set attention
  blocks (SAB, or ISAB through ``inducing`` learned points) mix the observations under a
  key padding mask, pooling by multihead attention (PMA, one learned seed) gives one
  vector, a linear layer its posterior ``mu, logvar [B, S, latent_dim]``. Only real sets
  (``set_mask`` and at least one observation) are encoded, so padding never reaches an
  attention with every key masked (PyTorch returns NaN there); padding sets get
  ``mu = logvar = 0`` and are left out of every loss and pool.
- **Sequence**: the set latents, projected to ``d_model``, plus a sinusoidal encoding of
  ``set_times`` in hours (periods ``max_hours / 256`` to ``4 * max_hours``: the irregular
  gaps, not the set's rank, are what the model sees) go through a bidirectional pre-norm
  Transformer; padding sets are masked out as keys.
- **Decoder**: set t is rebuilt from ``[z_t; h_t]``: its own sample and its
  contextualised state. ``h_t`` reads every set's latent (bidirectional) but no raw
  observation, so all information about set t beyond its neighbours passes through
  ``z_t``, whose KL bounds it. Per variable it predicts whether the set observes it
  (logits ``[B, S, V]``) and its value (``[B, S, V]``); a variable observed several times
  in one set is compared with the mean of its values.
- **Loss** per real set, averaged over the real sets of the batch: ``value_weight`` x the
  squared error summed over the observed variables + ``observed_weight`` x the binary
  cross-entropy summed over all V variables + ``beta`` x the free-bits KL. Sums per set
  keep the reconstruction on the scale of the KL, which is also per set (an ELBO).
- **Free bits**: each latent dimension's KL to N(0, I), averaged over the batch's real
  sets, counts at least ``free_bits`` nats: ``kl_loss = sum_d max(mean_s KL[s, d],
  free_bits)``; a dimension below the floor gets no gradient pushing it to collapse. So a
  posterior equal to the prior costs ``latent_dim * free_bits`` per set.
- **beta warm-up**: :meth:`SeqSetVAE.beta_at` grows beta linearly from 0 over
  ``beta_warmup_steps``; the training code passes it to :meth:`SeqSetVAE.pretrain`.

Classification runs the sequence over posterior means (no sampling), in one of three
``feature`` modes: ``"mu"`` (the latents are ``mu``, sets averaged), ``"mu_logvar_gated"``
(the latents are ``g * mu + (1 - g) * W logvar`` with a learned gate
``g = sigmoid(G [mu; logvar])``, sets averaged) or ``"uncertainty"`` (the latents are
``mu``, each set weighted in the pool by ``softmax_s(-mean_d logvar)``: confident sets
count more). The pooled state (every state has seen the whole stay, so a mean is enough)
is joined with the statics and their mask and an MLP gives ``n_classes`` logits (2 for
mortality; softmax and cross-entropy, as the other classifiers). With ``summaries`` a linear
``wide`` map of each variable's summary over the whole stay (:func:`stay_summaries`: last,
mean, min and max of its standardised values, log of its count, hours since it was last
seen) is added to the logits: the features a logistic model reads, beside the deep state
(wide and deep). It belongs to the head part and trains with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timetok.core.errors import ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.nn.encoders import CrossAttentionBlock
from timetok.core.outputs import ClassifierOutput, ModelOutput

if TYPE_CHECKING:
    from timetok.core.data.records import SetBatch

FEATURES = ("mu", "mu_logvar_gated", "uncertainty")
# Module-name prefixes of each part, for freeze policies (timetok.core.train.freeze).
PARTS = {
    "set_encoder": ["set_encoder"],
    "sequence": ["sequence"],
    "decoder": ["decoder"],
    "feature": ["feature"],
    "head": ["head", "wide"],
}


@dataclass(frozen=True)
class SeqSetVAEConfig:
    """Defaults for PhysioNet 2012 (36 variables, 5 statics, 48 hours)."""

    n_variables: int
    n_statics: int
    n_classes: int = 0  # 0: a pretrained model without a classification head
    d_model: int = 128
    latent_dim: int = 32
    set_layers: int = 2
    inducing: int = 0  # 0: SAB blocks; m > 0: ISAB blocks through m inducing points
    n_heads: int = 4
    seq_layers: int = 4
    d_ff: int = 256
    dropout: float = 0.1
    beta: float = 0.1  # KL weight after the warm-up
    beta_warmup_steps: int = 1000  # beta grows linearly from 0 over these steps
    free_bits: float = 0.05  # nats per latent dimension
    value_weight: float = 1.0
    observed_weight: float = 1.0
    feature: str = "mu"
    max_hours: float = 48.0  # the time encoding's scale
    summaries: bool = False  # the head also reads per-variable summaries of the stay

    def __post_init__(self):
        for name in ("n_variables", "d_model", "latent_dim", "set_layers", "n_heads",
                     "seq_layers", "d_ff"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_statics", "inducing", "beta_warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_classes < 0 or self.n_classes == 1:
            raise ConfigError(f"n_classes must be 0 (no head) or >= 2, got {self.n_classes}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        for name in ("beta", "free_bits", "value_weight", "observed_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.value_weight == self.observed_weight == 0:
            raise ConfigError("value_weight and observed_weight are both 0: pretraining "
                              "would reconstruct nothing; make one of them > 0")
        if not (math.isfinite(self.max_hours) and self.max_hours > 0):
            raise ConfigError(f"max_hours must be a finite number > 0, got {self.max_hours}")
        if self.feature not in FEATURES:
            raise ConfigError(f"feature must be one of {', '.join(FEATURES)}, "
                              f"got {self.feature!r}")


@dataclass
class Posterior:
    mu: Tensor  # [B, S, latent_dim], 0 at padding sets
    logvar: Tensor  # [B, S, latent_dim], 0 at padding sets
    valid: Tensor  # [B, S] bool: a real set (set_mask and at least one observation)


@dataclass(kw_only=True)
class PretrainOutput(ModelOutput):
    """``loss`` = value_weight * recon_value + observed_weight * recon_observed + beta *
    kl_loss, averaged over the batch's real sets, and its terms."""

    recon_value: Tensor  # squared error summed over a set's observed variables, per set
    recon_observed: Tensor  # cross-entropy of which variables a set holds, summed over V
    kl: Tensor  # KL to the prior summed over dimensions, per set (no free bits)
    kl_loss: Tensor  # the free-bits KL that enters the loss
    kl_per_dim: Tensor  # [latent_dim] KL per dimension, averaged over the real sets
    active_units: int  # dimensions whose mu varies (variance > 0.01) across the real sets
    observed_logits: Tensor  # [B, S, V]
    values: Tensor  # [B, S, V] predicted values


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL of ``N(mu, exp(logvar))`` to ``N(0, 1)``, elementwise: ``[..., L]`` -> ``[..., L]``."""
    return 0.5 * (logvar.exp() + mu**2 - 1 - logvar)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across sets: ``mu [N, L]`` (one row
    per real set) -> the number of columns with variance above ``threshold``."""
    if len(mu) < 2:
        return 0
    return int((mu.detach().var(dim=0) > threshold).sum())


def set_targets(values: Tensor, variables: Tensor, obs_mask: Tensor, n_variables: int
                ) -> tuple[Tensor, Tensor]:
    """Per set and variable, the mean of its observed values and whether it is observed:
    ``[B, S, K]`` observations -> ``[B, S, V]`` float, ``[B, S, V]`` bool."""
    weight = obs_mask.to(values.dtype)
    shape = (*values.shape[:-1], n_variables)
    total = values.new_zeros(shape).scatter_add_(-1, variables, values * weight)
    count = values.new_zeros(shape).scatter_add_(-1, variables, weight)
    return total / count.clamp_min(1), count > 0


SUMMARIES = ("last", "mean", "min", "max", "log_count", "since_last")
SUMMARY_CLIP = 5.0  # standardised values beyond +-5 are clipped in the summaries


def stay_summaries(batch: SetBatch, n_variables: int, max_hours: float) -> Tensor:
    """Per stay and variable, over all its observations: the last, mean, min and max of
    the standardised values (clipped to +-5), ``log(1 + count)`` and the hours from its
    last observation to the stay's last, over ``max_hours``; 0 for a variable never
    observed. ``[B, V * 6]``, the six summaries of variable 0 first. Observations lie in
    time order within a stay (set by set), so the latest is the one furthest along."""
    b, v = len(batch.values), n_variables
    mask = batch.obs_mask.reshape(b, -1)
    values = batch.values.reshape(b, -1).clamp(-SUMMARY_CLIP, SUMMARY_CLIP) * mask
    times = batch.times.reshape(b, -1)
    cell = torch.where(mask, batch.variables.reshape(b, -1), v)  # padding -> column v

    def reduce(source: Tensor, how: str, empty: float) -> Tensor:
        out = source.new_full((b, v + 1), empty)
        return out.scatter_reduce(1, cell, source, how, include_self=False)[:, :v]

    weight = mask.to(values.dtype)
    count = reduce(weight, "sum", 0.0)
    seen = count > 0
    position = torch.arange(mask.shape[1], device=mask.device).expand(b, -1)
    latest = reduce(torch.where(mask, position, -1), "amax", -1).clamp_min(0)
    end = torch.where(mask, times, 0).amax(1, keepdim=True)
    columns = [values.gather(1, latest), reduce(values, "sum", 0.0) / count.clamp_min(1),
               reduce(values, "amin", 0.0), reduce(values, "amax", 0.0), count.log1p(),
               (end - times.gather(1, latest)) / max_hours]
    summaries = torch.stack([torch.where(seen, c, 0) for c in columns], dim=-1)
    return summaries.reshape(b, v * len(SUMMARIES))


class SetBlock(nn.Module):
    """SAB (``inducing=0``): each observation attends to its set. ISAB (``inducing=m``): m
    learned points read the set, then the observations read them, O(K m) not O(K^2)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, inducing: int):
        super().__init__()
        self.read = CrossAttentionBlock(d_model, n_heads, d_ff, dropout)
        self.inducing = nn.Parameter(torch.randn(inducing, d_model) * 0.02) if inducing else None
        self.write = CrossAttentionBlock(d_model, n_heads, d_ff, dropout) if inducing else None

    def forward(self, x: Tensor, padding: Tensor) -> Tensor:
        """``x [n, K, d]``, ``padding [n, K]`` (True: no observation) -> ``[n, K, d]``."""
        if self.inducing is None:
            return self.read(x, x, padding)
        summary = self.read(self.inducing.expand(len(x), -1, -1), x, padding)  # (n, m, d)
        return self.write(x, summary)


class SetEncoder(nn.Module):
    """Sets of observations -> a diagonal Gaussian posterior each."""

    def __init__(self, c: SeqSetVAEConfig):
        super().__init__()
        d = c.d_model
        self.variable = nn.Embedding(c.n_variables, d)
        self.value_direction = nn.Embedding(c.n_variables, d)
        self.offset = nn.Linear(1, d, bias=False)
        self.blocks = nn.ModuleList(SetBlock(d, c.n_heads, c.d_ff, c.dropout, c.inducing)
                                    for _ in range(c.set_layers))
        self.seed = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pool = CrossAttentionBlock(d, c.n_heads, c.d_ff, c.dropout)
        self.norm = nn.LayerNorm(d)
        self.posterior = nn.Linear(d, 2 * c.latent_dim)

    def forward(self, values: Tensor, variables: Tensor, offsets: Tensor, observed: Tensor
                ) -> tuple[Tensor, Tensor]:
        """``values, variables, offsets, observed [n, K]`` (each set holding at least one
        observation) -> ``mu, logvar [n, latent_dim]``.

        Sets are encoded in groups of similar size (up to 1, 2, 4, 8 ... observations), each
        group cut to its largest set: attention then spends its work on observations, not
        on the padding up to the batch's largest set (on PhysioNet, 1-hour buckets, a batch
        of 64 stays holds 24,000 observations in 150,000 padded slots)."""
        first = torch.argsort((~observed).to(torch.int8), dim=1, stable=True)  # observed first
        values, variables, offsets, observed = (t.gather(1, first) for t in
                                                (values, variables, offsets, observed))
        counts = observed.sum(1)
        group = torch.ceil(torch.log2(counts.float())).long()  # width 2**group holds the set
        mu = values.new_empty(len(values), self.posterior.out_features // 2)
        logvar = torch.empty_like(mu)
        for g in group.unique().tolist():
            rows = (group == g).nonzero().squeeze(1)
            width = min(2 ** g, values.shape[1])
            mu[rows], logvar[rows] = self._encode(values[rows, :width], variables[rows, :width],
                                                  offsets[rows, :width], observed[rows, :width])
        return mu, logvar

    def _encode(self, values: Tensor, variables: Tensor, offsets: Tensor, observed: Tensor
                ) -> tuple[Tensor, Tensor]:
        """One group of sets ``[n, k]`` -> ``mu, logvar [n, latent_dim]``."""
        tokens = (self.variable(variables) + self.value_direction(variables) * values[..., None]
                  + self.offset(offsets[..., None]))  # (n, K, d)
        padding = ~observed
        for block in self.blocks:
            tokens = block(tokens, padding)
        pooled = self.pool(self.seed.expand(len(tokens), -1, -1), tokens, padding)[:, 0]
        return self.posterior(self.norm(pooled)).chunk(2, dim=-1)


class SequenceModel(nn.Module):
    """Set latents at irregular times -> contextualised states (bidirectional)."""

    def __init__(self, c: SeqSetVAEConfig):
        super().__init__()
        d, n = c.d_model, c.d_model // 2
        periods = (c.max_hours / 256) * (1024 ** (torch.arange(n) / max(n - 1, 1)))
        self.register_buffer("frequencies", 2 * math.pi / periods, persistent=False)
        self.project = nn.Linear(c.latent_dim, d)
        self.time = nn.Linear(2 * n, d)
        layer = nn.TransformerEncoderLayer(d, c.n_heads, c.d_ff, c.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, c.seq_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, latents: Tensor, set_times: Tensor, valid: Tensor) -> Tensor:
        """``latents [B, S, L]``, ``set_times [B, S]`` hours, ``valid [B, S]`` -> ``[B, S, d]``."""
        angles = set_times[..., None] * self.frequencies  # (B, S, d // 2)
        hidden = self.project(latents) + self.time(torch.cat([angles.sin(), angles.cos()], -1))
        padding = ~valid
        padding[:, 0] &= valid.any(1)  # a stay without sets attends to its first slot: no NaN
        return self.norm(self.layers(hidden, src_key_padding_mask=padding))


class SetDecoder(nn.Module):
    """``[z_t; h_t]`` -> which variables set t holds (logits) and their values."""

    def __init__(self, c: SeqSetVAEConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(c.latent_dim + c.d_model, c.d_ff), nn.GELU(), nn.Dropout(c.dropout),
            nn.Linear(c.d_ff, c.d_ff), nn.GELU(), nn.Linear(c.d_ff, 2 * c.n_variables))

    def forward(self, z: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """``z [B, S, L]``, ``hidden [B, S, d]`` -> ``observed_logits, values [B, S, V]``."""
        return self.net(torch.cat([z, hidden], -1)).chunk(2, dim=-1)


class LogvarGate(nn.Module):
    """``g * mu + (1 - g) * W logvar`` with ``g = sigmoid(G [mu; logvar])``. The gate starts
    almost open (sigmoid(4) = 0.98) so a pretrained sequence model first sees nearly the
    ``mu`` it was trained on."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.gate = nn.Linear(2 * latent_dim, latent_dim)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 4.0)
        self.variance = nn.Linear(latent_dim, latent_dim)

    def forward(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """``mu, logvar [..., L]`` -> ``[..., L]``."""
        g = torch.sigmoid(self.gate(torch.cat([mu, logvar], -1)))
        return g * mu + (1 - g) * self.variance(logvar)


class SeqSetVAE(PretrainedModel):
    """Set-VAE pretraining over irregular stays, and classification.

    >>> import numpy as np
    >>> from timetok.core.data.records import SetStay, collate_sets
    >>> stay = SetStay(values=np.array([0.5, -1.0, 2.0], np.float32),
    ...                variables=np.array([0, 3, 1]), times=np.array([0, 0, 1.5], np.float32),
    ...                set_index=np.array([0, 0, 1]), set_times=np.array([0, 1.5], np.float32),
    ...                label=1, statics=np.zeros(2, np.float32), statics_mask=np.ones(2, bool))
    >>> batch = collate_sets([stay, stay])
    >>> model = SeqSetVAE(SeqSetVAEConfig(n_variables=4, n_statics=2, n_classes=2, d_model=16,
    ...                                   latent_dim=4, n_heads=2, seq_layers=1, d_ff=32))
    >>> model.pretrain(batch, beta=model.beta_at(step=0)).loss.shape
    torch.Size([])
    >>> model(batch).logits.shape
    torch.Size([2, 2])
    """

    model_type: ClassVar[str] = "seqsetvae"
    config_class: ClassVar[type] = SeqSetVAEConfig

    def __init__(self, config: SeqSetVAEConfig):
        super().__init__()
        self.config = config
        c = config
        self.set_encoder = SetEncoder(c)
        self.sequence = SequenceModel(c)
        self.decoder = SetDecoder(c)
        self.feature = LogvarGate(c.latent_dim) if c.feature == "mu_logvar_gated" else None
        self.head = nn.Sequential(
            nn.Linear(c.d_model + 2 * c.n_statics, c.d_model), nn.GELU(), nn.Dropout(c.dropout),
            nn.Linear(c.d_model, c.n_classes)) if c.n_classes else None
        self.wide = (nn.Linear(len(SUMMARIES) * c.n_variables, c.n_classes)
                     if c.n_classes and c.summaries else None)

    def beta_at(self, step: int) -> float:
        """The KL weight at optimiser step ``step``: 0 at step 0, ``beta`` from
        ``beta_warmup_steps`` on, linear in between."""
        c = self.config
        if c.beta_warmup_steps == 0:
            return c.beta
        return c.beta * min(1.0, max(step, 0) / c.beta_warmup_steps)

    # --- sets -----------------------------------------------------------------------------

    def encode(self, batch: SetBatch) -> Posterior:
        """Each real set's posterior: ``mu, logvar [B, S, latent_dim]`` and ``valid [B, S]``."""
        c = self.config
        if batch.values.ndim != 3 or batch.set_mask.shape != batch.values.shape[:2]:
            raise ConfigError(f"a SetBatch holds values [B, S, K] and set_mask [B, S], got "
                              f"{list(batch.values.shape)} and {list(batch.set_mask.shape)}")
        top = int(batch.variables.max()) if batch.variables.numel() else 0
        if top >= c.n_variables:
            raise ConfigError(f"the batch holds variable index {top} but the model reads "
                              f"n_variables={c.n_variables}; pass data of the training variables")
        valid = batch.set_mask & batch.obs_mask.any(-1)
        offsets = batch.times - batch.set_times[..., None]
        mu_real, logvar_real = self.set_encoder(batch.values[valid], batch.variables[valid],
                                                offsets[valid], batch.obs_mask[valid])
        mu = mu_real.new_zeros(*valid.shape, c.latent_dim)
        logvar = torch.zeros_like(mu)
        mu[valid], logvar[valid] = mu_real, logvar_real
        return Posterior(mu, logvar, valid)

    # --- pretraining ------------------------------------------------------------------------

    def pretrain(self, batch: SetBatch, beta: float | None = None) -> PretrainOutput:
        """The loss of a batch with KL weight ``beta`` (``config.beta`` if None; pass
        :meth:`beta_at` for the warm-up). Latents are sampled in training, ``mu`` in eval."""
        c = self.config
        beta = c.beta if beta is None else beta
        post = self.encode(batch)
        z = post.mu
        if self.training:
            z = post.mu + torch.randn_like(post.mu) * (0.5 * post.logvar).exp()
        hidden = self.sequence(z, batch.set_times, post.valid)  # (B, S, d)
        logits, values = self.decoder(z, hidden)  # (B, S, V) each
        target, observed = set_targets(batch.values, batch.variables, batch.obs_mask,
                                       c.n_variables)
        weight = post.valid.to(z.dtype)
        n_sets = weight.sum().clamp_min(1)
        squared = ((values - target) ** 2 * observed).sum(-1)  # (B, S)
        recon_value = (squared * weight).sum() / n_sets
        bce = F.binary_cross_entropy_with_logits(logits, observed.to(logits.dtype),
                                                 reduction="none").sum(-1)
        recon_observed = (bce * weight).sum() / n_sets
        kl = gaussian_kl(post.mu, post.logvar)  # (B, S, L)
        kl_per_dim = (kl * weight[..., None]).sum((0, 1)) / n_sets
        kl_loss = kl_per_dim.clamp_min(c.free_bits).sum()
        loss = c.value_weight * recon_value + c.observed_weight * recon_observed + beta * kl_loss
        return PretrainOutput(loss=loss, recon_value=recon_value,
                              recon_observed=recon_observed, kl=kl_per_dim.sum(),
                              kl_loss=kl_loss, kl_per_dim=kl_per_dim.detach(),
                              active_units=active_units(post.mu[post.valid]),
                              observed_logits=logits, values=values)

    # --- classification ---------------------------------------------------------------------

    def embed(self, batch: SetBatch) -> Tensor:
        """The pooled sequence state of each stay over posterior means, ``[B, d_model]``."""
        post = self.encode(batch)
        latents = post.mu if self.feature is None else self.feature(post.mu, post.logvar)
        hidden = self.sequence(latents, batch.set_times, post.valid)  # (B, S, d)
        if self.config.feature == "uncertainty":
            precision = -post.logvar.mean(-1)  # (B, S)
            precision = precision.masked_fill(~post.valid, torch.finfo(precision.dtype).min)
            weight = precision.softmax(dim=1) * post.valid
        else:
            weight = post.valid / post.valid.sum(1, keepdim=True).clamp_min(1)
        return (hidden * weight[..., None]).sum(1)

    def forward(self, batch: SetBatch, targets: Tensor | None = None) -> ClassifierOutput:
        """Logits ``[B, n_classes]`` from the pooled state, the statics and their mask, plus
        a linear map of the stay's summaries with ``summaries``; with ``targets [B]`` (class
        indices) also their cross-entropy as ``loss``."""
        c = self.config
        if self.head is None:
            raise ConfigError("this model has no classification head; set n_classes and "
                              "finetune it first")
        if batch.statics.shape[-1] != c.n_statics:
            raise ConfigError(f"the model reads n_statics={c.n_statics} statics, the batch "
                              f"holds {batch.statics.shape[-1]}")
        embedding = self.embed(batch)
        statics = torch.where(batch.statics_mask, batch.statics, 0).to(embedding.dtype)
        mask = batch.statics_mask.to(embedding.dtype)
        logits = self.head(torch.cat([embedding, statics, mask], -1))
        if self.wide is not None:
            logits = logits + self.wide(
                stay_summaries(batch, c.n_variables, c.max_hours).to(embedding.dtype))
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return ClassifierOutput(loss=loss, logits=logits, embedding=embedding)
