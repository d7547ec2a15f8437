"""A causal Transformer over discrete codes, optionally conditioned on a prefix of labels.

The language model every code-generating system shares: the forecaster (system 2) reads a
channel's codes and continues them; the spectrogram prior (system 3) writes a code grid
after a prefix naming the user (and, optionally, an activity). The backbone is GPT-2 from
``transformers``, fed through ``inputs_embeds``:

    [c_1 .. c_P | x_1 .. x_N]  ->  GPT-2  ->  lm_head  ->  next-code logits

Condition tokens ``c`` come from one embedding table per condition field; each table has
one extra row, the *null* condition, which stands for "unconditioned" (dropped during
training for classifier-free guidance). With ``condition_every_code`` the conditions'
embeddings are also added to every code's input, as conditional PixelCNN adds its class
bias at every position: the model need not learn to attend back to the prefix. Parameter
names match GPT-2's own (``transformer.*``, ``lm_head.*``), so a model saved before this
split loads unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timetok.core.errors import ConfigError
from timetok.core.nn.sampling import Sampling, next_token


@dataclass(frozen=True)
class CodeLMConfig:
    vocab_size: int
    max_codes: int  # code positions one sequence may hold, prefix excluded
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 8
    d_ff: int = 256
    dropout: float = 0.1  # on embeddings and residual branches
    attn_dropout: float = 0.0  # on attention probabilities
    conditions: list[int] = field(default_factory=list)  # classes per prefix token
    grid_width: int = 0  # > 0: codes are a raster of rows this wide, with row/column embeddings
    condition_every_code: bool = False  # the prefix's embeddings also added to every code

    def __post_init__(self):
        for name in ("vocab_size", "max_codes", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        for name in ("dropout", "attn_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if any(n < 1 for n in self.conditions):
            raise ConfigError(f"every condition needs >= 1 class, got {self.conditions}")
        if self.grid_width < 0:
            raise ConfigError(f"grid_width must be >= 0, got {self.grid_width}")
        if self.condition_every_code and not self.conditions:
            raise ConfigError("condition_every_code needs conditions to add to every code")

    @property
    def prefix_length(self) -> int:
        return len(self.conditions)


@dataclass
class CodeLMOutput:
    loss: Tensor  # mean next-code cross-entropy
    logits: Tensor  # [S, T, K], the prediction of each target
    targets: Tensor  # [S, T]: every code but the first without a prefix, all with one


class CodeLanguageModel(nn.Module):
    """Next-code prediction over ``[S, N]`` code sequences, with an optional prefix.

    >>> lm = CodeLanguageModel(CodeLMConfig(vocab_size=16, max_codes=8, d_model=16,
    ...                                     n_heads=2, conditions=[5]))
    >>> codes = torch.randint(0, 16, (3, 8))
    >>> lm.loss(codes, conditions=torch.tensor([[0], [1], [4]])).logits.shape
    torch.Size([3, 8, 16])
    >>> lm.generate(None, 4, conditions=torch.tensor([[2]]), repeats=2).shape
    torch.Size([2, 4])
    """

    def __init__(self, config: CodeLMConfig):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.config = config
        # Built as GPT-2's own language model and taken apart, so that the weights start
        # exactly as GPT-2 initialises them (and as forecasters saved before did).
        gpt = GPT2LMHeadModel(GPT2Config(
            vocab_size=config.vocab_size,
            n_positions=config.prefix_length + config.max_codes,
            n_embd=config.d_model,
            n_layer=config.n_layers,
            n_head=config.n_heads,
            n_inner=config.d_ff,
            resid_pdrop=config.dropout,
            embd_pdrop=config.dropout,
            attn_pdrop=config.attn_dropout,
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        ))
        self.transformer, self.lm_head = gpt.transformer, gpt.lm_head
        self.condition_embeddings = nn.ModuleList(
            nn.Embedding(n + 1, config.d_model) for n in config.conditions  # + the null row
        )
        for table in self.condition_embeddings:
            nn.init.normal_(table.weight, std=0.02)
        if config.grid_width:
            # A code grid in raster order: a position is also told its row and column, shared
            # across the grid, so "the code above" is one column match away from the start.
            rows = -(-config.max_codes // config.grid_width)
            self.row_embedding = nn.Embedding(rows, config.d_model)
            self.column_embedding = nn.Embedding(config.grid_width, config.d_model)
            for table in (self.row_embedding, self.column_embedding):
                nn.init.normal_(table.weight, std=0.02)

    @property
    def code_embedding(self) -> nn.Embedding:
        return self.transformer.wte

    def embed_codes(self, codes: Tensor, start: int = 0, bias: Tensor | None = None) -> Tensor:
        """``[S, N]`` codes at positions ``start ..`` -> ``[S, N, d_model]``: the code
        embedding, plus its row and column on a grid and the ``[S, d_model]`` ``bias`` of
        :meth:`code_bias`."""
        embeds = self.transformer.wte(codes)
        if bias is not None:
            embeds = embeds + bias[:, None]
        if self.config.grid_width:
            position = torch.arange(start, start + codes.shape[1], device=codes.device)
            embeds = (embeds + self.row_embedding(position // self.config.grid_width)
                      + self.column_embedding(position % self.config.grid_width))
        return embeds

    # --- inputs -------------------------------------------------------------------------

    def null_conditions(self, n: int) -> Tensor:
        """``[n, P]`` null condition ids: the unconditioned prefix."""
        nulls = torch.tensor(self.config.conditions, device=self.lm_head.weight.device)
        return nulls.expand(n, -1)

    def code_bias(self, conditions: Tensor | None) -> Tensor | None:
        """``[S, d_model]``: what every code's input gains from its sequence's conditions
        (their embeddings summed), or None unless ``condition_every_code``."""
        if not self.config.condition_every_code or conditions is None:
            return None
        return sum(table(conditions[:, i]) for i, table in enumerate(self.condition_embeddings))

    def embed(self, codes: Tensor | None, conditions: Tensor | None = None) -> Tensor:
        """Prefix and code embeddings ``[S, P + N, d_model]``; ``codes`` ``[S, N]`` (or None
        for the prefix alone), ``conditions`` ``[S, P]`` ids (a null id drops a field)."""
        parts = []
        if self.config.prefix_length:
            if conditions is None or conditions.ndim != 2 or (
                conditions.shape[1] != self.config.prefix_length
            ):
                got = None if conditions is None else tuple(conditions.shape)
                raise ConfigError(
                    f"this language model is conditioned on {self.config.prefix_length} "
                    f"label(s) per sequence; pass conditions of shape [S, "
                    f"{self.config.prefix_length}], got {got}"
                )
            for i, table in enumerate(self.condition_embeddings):
                ids = conditions[:, i]
                if ids.min() < 0 or ids.max() > self.config.conditions[i]:
                    raise ConfigError(
                        f"condition {i} takes ids in [0, {self.config.conditions[i]}) (or "
                        f"{self.config.conditions[i]}: none), got {ids.tolist()}"
                    )
                parts.append(table(ids)[:, None])
        elif conditions is not None:
            raise ConfigError("this language model takes no conditions; pass None")
        if codes is not None:
            if codes.shape[1] > self.config.max_codes:
                raise ConfigError(
                    f"sequences of {codes.shape[1]} codes exceed the model's max_codes "
                    f"{self.config.max_codes}"
                )
            parts.append(self.embed_codes(codes, bias=self.code_bias(conditions)))
        if not parts:
            raise ConfigError("nothing to condition on: pass codes, conditions or both")
        return torch.cat(parts, dim=1)

    def hidden_states(self, embeds: Tensor) -> Tensor:
        """``[S, T, d_model]`` input embeddings -> the last layer's states, same shape."""
        return self.transformer(inputs_embeds=embeds).last_hidden_state

    # --- training -----------------------------------------------------------------------

    def forward(self, codes: Tensor, conditions: Tensor | None = None) -> Tensor:
        """Next-code logits ``[S, N, K]`` at each code position of ``codes`` ``[S, N]``."""
        hidden = self.hidden_states(self.embed(codes, conditions))
        return self.lm_head(hidden[:, self.config.prefix_length:])

    def loss(self, codes: Tensor, conditions: Tensor | None = None,
             inputs: Tensor | None = None) -> CodeLMOutput:
        """Cross-entropy of every code the model can predict: all of them after a prefix,
        all but the first without one. ``inputs`` (shaped like ``codes``, e.g. with some
        codes replaced) is what the model reads in their place; the targets stay ``codes``."""
        hidden = self.hidden_states(self.embed(codes if inputs is None else inputs, conditions))
        start = self.config.prefix_length - 1 if self.config.prefix_length else 0
        targets = codes if self.config.prefix_length else codes[:, 1:]
        logits = self.lm_head(hidden[:, start:start + targets.shape[1]])
        loss = F.cross_entropy(logits.reshape(-1, self.config.vocab_size), targets.reshape(-1))
        return CodeLMOutput(loss, logits, targets)

    # --- generation ---------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        codes: Tensor | None,
        steps: int,
        conditions: Tensor | None = None,
        sampling: Sampling = Sampling(),
        use_cache: bool = True,
        repeats: int = 1,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue ``[S, N]`` codes (or start from the prefix alone) -> ``[S * repeats,
        steps]`` new codes, ``repeats`` consecutive rows per input row.

        With the cache each step encodes one new code: preallocated for the whole sequence,
        or, with ``repeats``, grown after encoding each distinct input once and repeating its
        keys and values; without it every step recomputes the whole sequence (same result).
        ``guidance_scale`` s > 1 applies classifier-free guidance: logits
        ``u + s * (c - u)`` from the conditioned (c) and the null-prefix (u) sequence.
        """
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        n_codes = 0 if codes is None else codes.shape[1]
        if n_codes + steps > self.config.max_codes:
            raise ConfigError(
                f"{n_codes} codes + {steps} steps exceed the model's max_codes "
                f"{self.config.max_codes}"
            )
        embeds = self.embed(codes, conditions)  # (S, P + N, d)
        bias = self.code_bias(conditions)  # (S, d) or None
        guided = guidance_scale is not None and guidance_scale != 1
        if guided:
            if not self.config.prefix_length:
                raise ConfigError("guidance needs a model conditioned on a prefix")
            nulls = self.null_conditions(len(embeds))
            embeds = torch.cat([embeds, self.embed(codes, nulls)])  # (2S, P + N, d)
            if bias is not None:
                bias = torch.cat([bias, self.code_bias(nulls)])
        if bias is not None:  # rows [cond..., uncond...] stay in that order when guided
            bias = bias.repeat_interleave(repeats, 0)

        def choose(hidden: Tensor) -> Tensor:  # last states (rows, d) -> next codes
            logits = self.lm_head(hidden).float()
            if guided:
                cond, uncond = logits.chunk(2)
                logits = uncond + guidance_scale * (cond - uncond)
            token = next_token(logits, sampling, generator)
            return torch.cat([token, token]) if guided else token

        out = []
        if not use_cache:
            embeds = embeds.repeat_interleave(repeats, 0)
            for step in range(steps):
                token = choose(self.hidden_states(embeds)[:, -1])
                out.append(token)
                new = self.embed_codes(token[:, None], n_codes + step, bias)
                embeds = torch.cat([embeds, new], dim=1)
        else:
            if repeats == 1:
                from transformers import StaticCache

                # Preallocated for the whole sequence: a growing cache copies all its keys
                # and values at every step, quadratic in the steps (2.5x for 1024 codes).
                cache = StaticCache(config=self.transformer.config,
                                    max_cache_len=embeds.shape[1] + steps)
                last, cache = self._cached_step(embeds, cache)
            else:  # a context sampled many times (forecast paths): encoded once, repeated
                last, cache = self._cached_step(embeds, None)
                cache.batch_repeat_interleave(repeats)
                last = last.repeat_interleave(repeats, 0)
            for step in range(steps):
                token = choose(last)
                out.append(token)
                if step + 1 < steps:
                    new = self.embed_codes(token[:, None], n_codes + step, bias)
                    last, cache = self._cached_step(new, cache)
        tokens = torch.stack(out, dim=1)
        return tokens.chunk(2)[0] if guided else tokens

    def _cached_step(self, embeds: Tensor, cache) -> tuple[Tensor, object]:
        """The last position's state ``[S, d_model]`` and the grown KV cache. The cache goes
        in and comes out by position: ``transformers`` renamed it (``past_key_values`` ->
        ``cache``) within 5.x."""
        out = self.transformer(None, cache, inputs_embeds=embeds, use_cache=True)
        return out[0][:, -1], out[1]
