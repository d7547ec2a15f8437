"""System 4: TimeMAE, masked pretraining of a Transformer encoder, then classification.

A series ``[B, T, C]`` is cut into ``N = ceil(T / slice_length)`` sub-series by a
convolution with kernel = stride = ``slice_length`` (``[B, N, d]``; a length that is not
a multiple is padded with zeros, and slices holding no observed step are ignored). In
pretraining a share ``mask_ratio`` of each sample's slices is masked:

- the *visible encoder* sees the visible slices only (no mask token ever enters it);
- a *regressor* of cross-attention blocks turns one query per masked slice (a learned mask
  token + the slice's position) into a predicted representation, reading the visible
  representations as keys and values;
- **MRR**: the prediction regresses onto a momentum (EMA) copy of the encoder's
  representation of the masked slices;
- **MCC**: it also classifies each masked slice's *codeword*: with ``codeword="linear"``
  (the paper's) a linear layer over the slice embedding with a Gumbel-softmax argmax gives
  the target and, applied to the prediction, the logits; with ``codeword="vq"`` the
  project's quantizer (EMA codebook, k-means init, dead-code restart) assigns the targets
  and a linear head predicts them.

Classification reads all slices through the encoder, averages the valid ones and applies
a linear head. The encoder is PyTorch's pre-norm Transformer (``encoder="native"``),
``transformers.BertModel`` fed ``inputs_embeds`` and the visible slices' ``position_ids``
(``encoder="bert"``), or dilated residual convolutions over the steps (``encoder="conv"``,
the encoder for small sets). The convolutional encoder reads the whole series with the
masked slices' steps hidden (zero, with an indicator channel saying so); its step
features averaged per slice are the slice representations, and the regressor's queries
start from the masked slices' own (context-only) representations. Its slicing layer stays
fixed: a random projection of each raw slice, which the codeword layer turns into MCC
targets (as BEST-RQ's random-projection quantizer does).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timetok.core.errors import ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.nn.encoders import ENCODERS, CrossAttentionBlock, DilatedConvEncoder
from timetok.core.outputs import ClassifierOutput, ModelOutput

CODEWORDS = ("linear", "vq")
ENCODER_KINDS = (*ENCODERS, "conv")


@dataclass(frozen=True)
class TimeMAEConfig:
    """Defaults follow the original TimeMAE code on HAR."""

    n_channels: int
    length: int  # steps per series
    n_classes: int = 0  # 0: a pretrained encoder without a classification head
    slice_length: int = 8
    d_model: int = 64
    n_layers: int = 8
    n_heads: int = 4
    d_ff: int = 256
    dropout: float = 0.2
    regressor_layers: int = 4
    mask_ratio: float = 0.6
    codeword: str = "linear"
    vocab_size: int = 192
    momentum: float = 0.99
    encoder: str = "native"
    label_smoothing: float = 0.2  # of the codeword classification
    mrr_weight: float = 5.0
    mcc_weight: float = 1.0

    def __post_init__(self):
        for name in ("n_channels", "length", "slice_length", "d_model", "n_layers",
                     "n_heads", "d_ff", "regressor_layers", "vocab_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_classes < 0 or self.n_classes == 1:
            raise ConfigError(f"n_classes must be 0 (no head) or >= 2, got {self.n_classes}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.codeword not in CODEWORDS:
            raise ConfigError(f"codeword must be one of {', '.join(CODEWORDS)}, "
                              f"got {self.codeword!r}")
        if self.encoder not in ENCODER_KINDS:
            raise ConfigError(f"encoder must be one of {', '.join(ENCODER_KINDS)}, "
                              f"got {self.encoder!r}")
        for name in ("dropout", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if not 0 < self.momentum < 1:
            raise ConfigError(f"momentum must lie in (0, 1), got {self.momentum}")
        if not 0 < self.mask_ratio < 1:
            raise ConfigError(f"mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if not 1 <= self.n_masked < self.n_slices:
            raise ConfigError(
                f"mask_ratio {self.mask_ratio} of {self.n_slices} slices masks "
                f"{self.n_masked}; pretraining needs at least one masked and one visible "
                "slice: change mask_ratio or a shorter slice_length"
            )

    @property
    def n_slices(self) -> int:
        return math.ceil(self.length / self.slice_length)

    @property
    def n_masked(self) -> int:
        return int(self.mask_ratio * self.n_slices)


@dataclass(kw_only=True)
class PretrainOutput(ModelOutput):
    """Both pretext losses: ``loss = mrr_weight * mrr + mcc_weight * mcc``."""

    mrr: Tensor  # MSE of the predicted representations
    mcc: Tensor  # cross-entropy of the codeword classification
    mcc_accuracy: Tensor
    codes: Tensor  # [B, M] codeword targets of the masked slices


def gather(t: Tensor, index: Tensor) -> Tensor:
    """Rows ``index [B, m]`` of ``t [B, n, ...]`` -> ``[B, m, ...]``."""
    return t.gather(1, index.view(*index.shape, *[1] * (t.ndim - 2)).expand(
        -1, -1, *t.shape[2:]))


class TimeMAE(PretrainedModel):
    """Masked pretraining over sliced series, and classification.

    >>> model = TimeMAE(TimeMAEConfig(n_channels=3, length=64, n_classes=4, d_model=16,
    ...                               n_layers=1, n_heads=2, d_ff=32, regressor_layers=1))
    >>> model.pretrain(torch.randn(2, 64, 3)).loss.shape
    torch.Size([])
    >>> model(torch.randn(2, 64, 3)).logits.shape
    torch.Size([2, 4])
    """

    model_type: ClassVar[str] = "timemae"
    config_class: ClassVar[type] = TimeMAEConfig

    def __init__(self, config: TimeMAEConfig):
        super().__init__()
        self.config = config
        c, d = config, config.d_model
        self.slicer = nn.Conv1d(c.n_channels, d, kernel_size=c.slice_length,
                                stride=c.slice_length)
        if c.encoder == "conv":
            self.encoder = DilatedConvEncoder(c.n_channels, d, c.n_layers, c.dropout)
        else:
            self.encoder = ENCODERS[c.encoder](c.n_slices, d, c.n_layers, c.n_heads, c.d_ff,
                                               c.dropout)
        # The momentum target: a copy of the encoder that only the EMA update moves.
        self.target = copy.deepcopy(self.encoder).requires_grad_(False).eval()
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)
        self.query_position = nn.Embedding(c.n_slices, d)
        nn.init.normal_(self.query_position.weight, std=0.02)
        self.regressor = nn.ModuleList(
            CrossAttentionBlock(d, c.n_heads, c.d_ff, c.dropout)
            for _ in range(c.regressor_layers)
        )
        self.regressor_norm = nn.LayerNorm(d)
        if c.codeword == "linear":
            self.codeword = nn.Linear(d, c.vocab_size)
        else:
            from timetok.core.nn.quantizer import Quantizer

            self.quantizer = Quantizer("vq", d, c.vocab_size)
            self.mcc_head = nn.Linear(d, c.vocab_size)
        self.head = nn.Linear(d, c.n_classes) if c.n_classes else None

    def train(self, mode: bool = True):
        super().train(mode)
        self.target.eval()  # a fixed function of its weights: no dropout in the targets
        return self

    # --- slices ---------------------------------------------------------------------

    def slices(self, x: Tensor, observed: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x [B, T, C]`` (``observed [B, T]``, True: a real step) -> slice embeddings
        ``[B, N, d]`` and which slices hold a real step, ``[B, N]``."""
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.length or x.shape[2] != c.n_channels:
            raise ConfigError(
                f"the model reads series of {c.length} steps x {c.n_channels} channel(s), got "
                f"{list(x.shape[1:])}; pass data shaped like the training data"
            )
        observed = self._observed(x, observed)
        pad = c.n_slices * c.slice_length - c.length
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
            observed = F.pad(observed, (0, pad))
        embeds = self.slicer(x.transpose(1, 2)).transpose(1, 2)  # (B, N, d)
        valid = observed.view(len(x), c.n_slices, c.slice_length).any(-1)
        return embeds, valid

    def _observed(self, x: Tensor, observed: Tensor | None) -> Tensor:
        if observed is None:
            return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return observed

    def _pool(self, steps: Tensor, observed: Tensor) -> Tensor:
        """Step features ``[B, T, d]`` -> the mean of each slice's observed steps, ``[B, N, d]``."""
        c = self.config
        pad = c.n_slices * c.slice_length - c.length
        weight = F.pad(observed, (0, pad)).float().view(len(steps), c.n_slices, -1, 1)
        steps = F.pad(steps, (0, 0, 0, pad)).view(len(steps), c.n_slices, c.slice_length, -1)
        return (steps * weight).sum(2) / weight.sum(2).clamp_min(1)

    def choose_masked(self, valid: Tensor, generator: torch.Generator | None = None
                      ) -> tuple[Tensor, Tensor]:
        """Per sample, random valid slices to mask and the rest to show: positions
        ``[B, M]`` and ``[B, N - M]`` with ``M = n_masked``. A series with fewer valid
        slices than the longest masks ``mask_ratio`` of its own (at least one, and never
        all: one valid slice is only shown), and fills its other masked places with padding
        slices, which carry no loss; padding is ignored by attention wherever it lands."""
        noise = torch.rand(valid.shape, generator=generator, device=valid.device)
        noise = noise.masked_fill(~valid, -1.0)
        rank = noise.argsort(dim=1, descending=True).argsort(dim=1)  # valid slices first
        count = valid.sum(1, keepdim=True)
        own = (self.config.mask_ratio * count).long().clamp(min=1)
        chosen = rank < torch.minimum(own, count - 1)
        # chosen first, then padding, then the other valid slices
        key = torch.where(chosen, 2 + noise, torch.where(valid, noise, torch.ones_like(noise)))
        order = key.argsort(dim=1, descending=True)
        m = self.config.n_masked
        return order[:, :m].sort(dim=1).values, order[:, m:].sort(dim=1).values

    # --- pretraining ------------------------------------------------------------------

    def pretrain(self, x: Tensor, observed: Tensor | None = None,
                 masked: Tensor | None = None, generator: torch.Generator | None = None
                 ) -> PretrainOutput:
        """Both pretext losses on a batch ``[B, T, C]``; ``masked [B, M]`` fixes which
        slices are masked (drawn with ``generator`` otherwise)."""
        c = self.config
        embeds, valid = self.slices(x, observed)
        if masked is None:
            masked, visible = self.choose_masked(valid, generator)
        else:
            keep = torch.ones_like(valid).scatter(1, masked, False)
            visible = keep.nonzero()[:, 1].view(len(x), -1)
        hidden_pad = ~gather(valid, visible)
        hidden = gather(embeds, masked)
        weight = gather(valid, masked).float()
        if c.encoder == "conv":
            observed = self._observed(x, observed)
            hidden_steps = torch.zeros_like(valid).scatter(1, masked, True)
            shown = observed & ~hidden_steps.repeat_interleave(c.slice_length, 1)[:, :c.length]
            context = self._pool(self.encoder(x, shown), observed)  # (B, N, d)
            shown, queries = gather(context, visible), gather(context, masked)
            with torch.no_grad():
                target = gather(self._pool(self.target(x, observed), observed), masked)
        else:
            shown = self.encoder(gather(embeds, visible), visible, hidden_pad)  # (B, V, d)
            queries = self.mask_token  # (d,): every query starts from the mask token
            with torch.no_grad():
                target = self.target(hidden, masked, ~weight.bool())
        queries = queries + self.query_position(masked)  # (B, M, d)
        for block in self.regressor:
            queries = block(queries, shown, hidden_pad)
        predicted = self.regressor_norm(queries)
        # A masked place holding padding carries no loss; its target may be NaN (it
        # attended to padding only), so it is zeroed before it meets a gradient.
        target = torch.where(weight.bool()[..., None], target, 0)
        total = weight.sum().clamp_min(1)
        mrr = (((predicted - target) ** 2).mean(-1) * weight).sum() / total
        codes, logits = self._codewords(hidden.detach(), predicted)
        ce = F.cross_entropy(logits.flatten(0, 1), codes.flatten(), reduction="none",
                             label_smoothing=c.label_smoothing).view_as(weight)
        mcc = (ce * weight).sum() / total
        accuracy = ((logits.argmax(-1) == codes).float() * weight).sum() / total
        return PretrainOutput(loss=c.mrr_weight * mrr + c.mcc_weight * mcc, mrr=mrr, mcc=mcc,
                              mcc_accuracy=accuracy.detach(), codes=codes)

    def _codewords(self, hidden: Tensor, predicted: Tensor) -> tuple[Tensor, Tensor]:
        """Targets ``[B, M]`` for the masked slices' embeddings and logits of the
        predictions ``[B, M, vocab]``."""
        if self.config.codeword == "linear":
            with torch.no_grad():
                codes = F.gumbel_softmax(self.codeword(hidden), dim=-1).argmax(-1)
            return codes, self.codeword(predicted)
        with torch.no_grad():
            _, codes, _ = self.quantizer(hidden)
        return codes, self.mcc_head(predicted)

    @torch.no_grad()
    def update_target(self) -> None:
        """One momentum step of the target towards the encoder."""
        m = self.config.momentum
        for target, online in zip(self.target.parameters(), self.encoder.parameters(),
                                  strict=True):
            target.mul_(m).add_(online.detach(), alpha=1 - m)

    # --- classification ----------------------------------------------------------------

    def embed(self, x: Tensor, observed: Tensor | None = None) -> Tensor:
        """``[B, T, C]`` -> the mean of the valid slices' representations (of the observed
        steps' features, for the convolutional encoder), ``[B, d]``."""
        embeds, valid = self.slices(x, observed)  # also checks the shape
        if self.config.encoder == "conv":
            observed = self._observed(x, observed)
            weight = observed.float()[..., None]
            return (self.encoder(x, observed) * weight).sum(1) / weight.sum(1).clamp_min(1)
        positions = torch.arange(self.config.n_slices, device=x.device).expand(len(x), -1)
        hidden = self.encoder(embeds, positions, ~valid)
        weight = valid.float()[..., None]
        return (hidden * weight).sum(1) / weight.sum(1).clamp_min(1)

    def forward(self, x: Tensor, targets: Tensor | None = None, observed: Tensor | None = None,
                label_smoothing: float = 0.0) -> ClassifierOutput:
        """``x [B, T, C]`` -> logits ``[B, n_classes]`` and the pooled embedding; with
        class indices ``targets [B]``, their cross-entropy as ``loss``."""
        if self.head is None:
            raise ConfigError("this model has no classification head; finetune it first")
        embedding = self.embed(x, observed)
        logits = self.head(embedding)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
        return ClassifierOutput(loss=loss, logits=logits, embedding=embedding)
