"""System 3: micro-Doppler spectrogram generation — a 2-D VQ-VAE and a user-conditioned prior.

Stage one, :class:`SpectrogramTokenizer`, turns a grayscale ``S × S`` image (values in
[0, 1]) into a ``g × g`` grid of codes (``g = S / 2**L``) and back: the 2-D convolutional
encoder and decoder of :mod:`timetok.core.nn.conv2d` around the project's quantizer (EMA
codebook, k-means initialisation, dead-code restart).

Stage two, :class:`GeneratorModel`, holds the frozen tokenizer and the project's
code language model (:mod:`timetok.core.nn.code_lm`) reading the grid in raster order after
a prefix naming the user:

    [user | c_1 .. c_{g*g}]  ->  GPT-2  ->  next code

The prefix's null row stands for "any user"; dropping the user during training lets
sampling apply classifier-free guidance. Sampling (temperature, top-k, top-p, the KV
cache) is the language model's, the one forecasting uses too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from timetok.core.errors import ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.nn.code_lm import CodeLanguageModel, CodeLMConfig
from timetok.core.nn.conv2d import ConvDecoder2d, ConvEncoder2d, check_channels
from timetok.core.nn.quantizer import Quantizer, check_options, fsq_levels_for
from timetok.core.nn.sampling import Sampling
from timetok.core.outputs import ModelOutput


@dataclass(frozen=True)
class SpectrogramTokenizerConfig:
    """Defaults: 128 × 128 images -> a 32 × 32 grid over 512 codes of 64 dimensions."""

    image_size: int = 128
    channels: list[int] = field(default_factory=lambda: [32, 64])
    n_res_layers: int = 1
    embedding_dim: int = 64
    num_embeddings: int = 512
    quantizer: str = "vq"
    commitment_cost: float = 0.25
    decay: float = 0.9
    kmeans_init: bool = True
    dead_code_threshold: float = 2.0
    fsq_levels: list[int] | None = None

    def __post_init__(self):
        check_channels(self.channels, self.image_size)
        for name in ("embedding_dim", "num_embeddings"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_res_layers < 0:
            raise ConfigError(f"n_res_layers must be >= 0, got {self.n_res_layers}")
        if self.quantizer == "rvq":
            raise ConfigError("the spectrogram tokenizer takes quantizer 'vq' or 'fsq': a "
                              "residual VQ's stacked codes do not fit one prior sequence")
        check_options(self.quantizer, self.num_embeddings, self.decay, 1, self.fsq_levels)

    @property
    def codebook_size(self) -> int:
        """Distinct codes: the codebook's, or the product of the FSQ levels."""
        if self.quantizer == "fsq":
            return math.prod(fsq_levels_for(self.num_embeddings, self.fsq_levels))
        return self.num_embeddings

    @property
    def grid(self) -> int:
        """Codes per side of the grid."""
        return self.image_size // 2 ** len(self.channels)


@dataclass(kw_only=True)
class SpectrogramTokenizerOutput(ModelOutput):
    """``loss`` is ``recon_loss + vq_loss``."""

    reconstruction: Tensor  # [B, S, S] in [0, 1]
    codes: Tensor  # [B, g, g]
    recon_loss: Tensor  # MSE on the [-1, 1] scale
    vq_loss: Tensor


@dataclass(kw_only=True)
class GeneratorOutput(ModelOutput):
    """``loss``: the mean next-code cross-entropy of the grids."""

    logits: Tensor  # [B, g*g, K]: the prediction of each code, in raster order


class SpectrogramTokenizer(PretrainedModel):
    """Encode ``[B, S, S]`` images in [0, 1] to codes ``[B, g, g]`` and decode them back.

    >>> tok = SpectrogramTokenizer(SpectrogramTokenizerConfig(image_size=32, channels=[8, 8]))
    >>> codes = tok.encode(torch.rand(2, 32, 32))
    >>> codes.shape, tok.decode(codes).shape
    (torch.Size([2, 8, 8]), torch.Size([2, 32, 32]))
    """

    model_type: ClassVar[str] = "spectrogram-tokenizer"
    config_class: ClassVar[type] = SpectrogramTokenizerConfig

    def __init__(self, config: SpectrogramTokenizerConfig):
        super().__init__()
        self.config = config
        self.encoder = ConvEncoder2d(config.channels, config.embedding_dim, config.n_res_layers)
        self.decoder = ConvDecoder2d(config.channels, config.embedding_dim, config.n_res_layers)
        self.quantizer = Quantizer(
            config.quantizer, config.embedding_dim, config.num_embeddings,
            commitment=config.commitment_cost, decay=config.decay,
            kmeans_init=config.kmeans_init, dead_code_threshold=config.dead_code_threshold,
            fsq_levels=config.fsq_levels,
        )

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def _check(self, images: Tensor) -> None:
        size = self.config.image_size
        if images.ndim != 3 or tuple(images.shape[1:]) != (size, size):
            raise ConfigError(f"expected images of shape [batch, {size}, {size}], got "
                              f"{tuple(images.shape)}; resize them to the tokenizer's size")

    def _latents(self, images: Tensor) -> Tensor:
        z = self.encoder(images[:, None] * 2 - 1)  # (B, D, g, g)
        return rearrange(z, "b d h w -> b (h w) d")

    def _image(self, quantized: Tensor) -> Tensor:
        """Quantised latents ``[B, g*g, D]`` -> images on the [-1, 1] scale ``[B, S, S]``."""
        z = rearrange(quantized, "b (h w) d -> b d h w", h=self.config.grid)
        return self.decoder(z)[:, 0]

    def forward(self, images: Tensor) -> SpectrogramTokenizerOutput:
        self._check(images)
        quantized, indices, vq_loss = self.quantizer(self._latents(images))
        out = self._image(quantized)
        recon_loss = F.mse_loss(out, images * 2 - 1)
        codes = rearrange(indices, "b (h w) -> b h w", h=self.config.grid)
        return SpectrogramTokenizerOutput(
            reconstruction=((out + 1) / 2).clamp(0, 1), codes=codes,
            loss=recon_loss + vq_loss, recon_loss=recon_loss, vq_loss=vq_loss)

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """``[B, S, S]`` images in [0, 1] -> codes ``[B, g, g]``."""
        self._check(images)
        _, indices, _ = self.quantizer(self._latents(images))
        return rearrange(indices, "b (h w) -> b h w", h=self.config.grid)

    @torch.no_grad()
    def encode_images(self, images: np.ndarray, batch_size: int = 64) -> Tensor:
        """Codes ``[N, g, g]`` (on the CPU) of ``[N, S, S]`` images held in memory, encoded
        in eval mode a batch at a time on the model's device."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        codes = [self.encode(torch.from_numpy(images[i:i + batch_size]).to(device)).cpu()
                 for i in range(0, len(images), batch_size)]
        self.train(was_training)
        return torch.cat(codes)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, g, g]`` -> images ``[B, S, S]`` in [0, 1]."""
        quantized = self.quantizer.decode_indices(rearrange(codes, "b h w -> b (h w)"))
        return ((self._image(quantized) + 1) / 2).clamp(0, 1)


@dataclass(frozen=True)
class GeneratorConfig:
    """The frozen tokenizer's settings, the prior's sizes and the users it knows."""

    tokenizer: SpectrogramTokenizerConfig  # a dict is converted
    users: list[str]  # user names, in id order
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    d_ff: int = 1024
    dropout: float = 0.1
    condition_dropout: float = 0.1  # share of training sequences seen without their user
    grid_positions: bool = False  # the prior also embeds each code's row and column
    user_every_code: bool = False  # the user's embedding also added to every code's input
    code_noise: float = 0.0  # share of the prior's input codes replaced at random in training

    def __post_init__(self):
        if isinstance(self.tokenizer, dict):  # as read from config.json
            object.__setattr__(self, "tokenizer", SpectrogramTokenizerConfig(**self.tokenizer))
        if not self.users:
            raise ConfigError("a generator needs at least one user")
        if len(set(self.users)) != len(self.users):
            raise ConfigError(f"user names must be distinct, got {self.users}")
        for name in ("condition_dropout", "code_noise"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        self.prior_config()  # sizes checked once, here

    def prior_config(self) -> CodeLMConfig:
        return CodeLMConfig(
            vocab_size=self.tokenizer.codebook_size,
            max_codes=self.tokenizer.grid ** 2, d_model=self.d_model, n_layers=self.n_layers,
            n_heads=self.n_heads, d_ff=self.d_ff, dropout=self.dropout,
            conditions=[len(self.users)],
            grid_width=self.tokenizer.grid if self.grid_positions else 0,
            condition_every_code=self.user_every_code,
        )


class GeneratorModel(PretrainedModel):
    """A frozen :class:`SpectrogramTokenizer` and a user-conditioned prior over its codes.

    >>> tok = SpectrogramTokenizerConfig(image_size=32, channels=[8, 8], num_embeddings=16)
    >>> gen = GeneratorModel(GeneratorConfig(tok, ["ann", "bob"], d_model=16,
    ...                                            n_layers=1, n_heads=2, d_ff=32))
    >>> gen.generate(users=[0, 1], num_samples=2).shape
    (4, 32, 32)
    """

    model_type: ClassVar[str] = "spectrogram-generator"
    config_class: ClassVar[type] = GeneratorConfig

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.tokenizer = SpectrogramTokenizer(config.tokenizer)
        self.tokenizer.requires_grad_(False)
        self.prior = CodeLanguageModel(config.prior_config())

    @classmethod
    def from_tokenizer(cls, tokenizer: SpectrogramTokenizer, users: list[str],
                       **sizes) -> GeneratorModel:
        """A new generator around a trained tokenizer (its weights copied in)."""
        model = cls(GeneratorConfig(tokenizer.config, list(users), **sizes))
        model.tokenizer.load_state_dict(tokenizer.state_dict())
        return model

    def train(self, mode: bool = True) -> GeneratorModel:
        super().train(mode)
        self.tokenizer.eval()  # frozen: its EMA codebook must not move either
        return self

    @property
    def n_users(self) -> int:
        return len(self.config.users)

    def user_ids(self, users: list[int | str]) -> Tensor:
        """User names or ids -> ids ``[U]``; unknown ones are refused, naming the range."""
        ids = []
        for user in users:
            if isinstance(user, str) and not user.lstrip("-").isdigit():
                if user not in self.config.users:
                    raise ConfigError(f"unknown user {user!r}; this model knows "
                                      f"{', '.join(self.config.users[:8])}"
                                      f"{' ...' if self.n_users > 8 else ''}")
                ids.append(self.config.users.index(user))
                continue
            if not 0 <= int(user) < self.n_users:
                raise ConfigError(f"user id {user} is outside the trained range 0..."
                                  f"{self.n_users - 1}; pass ids the model was trained on")
            ids.append(int(user))
        if not ids:
            raise ConfigError("no users given; pass one or more user ids")
        return torch.tensor(ids, device=self.prior.lm_head.weight.device)

    def forward(self, codes: Tensor, users: Tensor, inputs: Tensor | None = None
                ) -> GeneratorOutput:
        """Next-code cross-entropy of code grids ``[B, g, g]`` after their users ``[B]``
        (a user id equal to ``n_users`` is the null prefix), reading ``inputs`` (grids like
        ``codes``) in their place where given: the codes it predicts stay ``codes``."""
        flat = None if inputs is None else rearrange(inputs, "b h w -> b (h w)")
        out = self.prior.loss(rearrange(codes, "b h w -> b (h w)"), users[:, None], flat)
        return GeneratorOutput(loss=out.loss, logits=out.logits)

    @torch.no_grad()
    def generate_codes(self, users: list[int | str], num_samples: int = 1,
                       sampling: Sampling = Sampling(), guidance_scale: float | None = None,
                       use_cache: bool = True, seed: int | None = None,
                       batch_size: int = 64, unconditional: bool = False) -> Tensor:
        """Code grids ``[U * num_samples, g, g]``, ``num_samples`` consecutive per user;
        ``unconditional`` samples every one after the null prefix instead (a baseline: what
        the prior draws knowing no user)."""
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        if unconditional and guidance_scale not in (None, 1):
            raise ConfigError("guidance needs the user prefix; drop guidance_scale or "
                              "unconditional")
        ids = self.user_ids(users).repeat_interleave(num_samples)
        if unconditional:
            ids = torch.full_like(ids, self.n_users)
        device = ids.device
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device).manual_seed(seed)
        grid = self.config.tokenizer.grid
        chunks = [
            self.prior.generate(None, grid * grid, conditions=chunk[:, None],
                                sampling=sampling, use_cache=use_cache,
                                guidance_scale=guidance_scale, generator=generator)
            for chunk in ids.split(batch_size)
        ]
        return rearrange(torch.cat(chunks), "b (h w) -> b h w", h=grid)

    @torch.no_grad()
    def generate(self, users: list[int | str], num_samples: int = 1,
                 sampling: Sampling = Sampling(), guidance_scale: float | None = None,
                 use_cache: bool = True, seed: int | None = None, batch_size: int = 64
                 ) -> np.ndarray:
        """Images ``[U * num_samples, S, S]`` (float32 in [0, 1]), ``num_samples``
        consecutive per user, in the order of ``users``."""
        codes = self.generate_codes(users, num_samples, sampling, guidance_scale, use_cache,
                                    seed, batch_size)
        images = torch.cat([self.tokenizer.decode(chunk) for chunk in codes.split(batch_size)])
        return images.float().cpu().numpy()
