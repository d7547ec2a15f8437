"""Encoders: Transformers over sequences of embeddings with learned positions, and a
dilated convolutional encoder over the steps of a series.

The Transformers take ``embeds [B, n, d]``, the ``positions [B, n]`` those embeddings
hold in the whole sequence (a subset of it when some are masked out) and an optional
``padding [B, n]`` (True: ignore) and return ``[B, n, d]``:

- :class:`NativeEncoder`: PyTorch's pre-norm ``TransformerEncoderLayer`` stack;
- :class:`BertEncoder`: ``transformers.BertModel`` fed ``inputs_embeds`` and the
  ``position_ids`` of the embeddings it sees, its own position table and layer norm doing
  the rest (BERT wants integer ids otherwise).

:class:`DilatedConvEncoder` reads the steps themselves, ``[B, T, C]``, with a mask of the
steps it may see. :class:`CrossAttentionBlock` lets queries read a memory without seeing
each other.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NativeEncoder(nn.Module):
    def __init__(self, max_positions: int, d_model: int, n_layers: int, n_heads: int,
                 d_ff: int, dropout: float):
        super().__init__()
        self.position = nn.Embedding(max_positions, d_model)
        nn.init.normal_(self.position.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, embeds: Tensor, positions: Tensor, padding: Tensor | None = None
                ) -> Tensor:
        hidden = embeds + self.position(positions)
        return self.norm(self.layers(hidden, src_key_padding_mask=padding))


class BertEncoder(nn.Module):
    def __init__(self, max_positions: int, d_model: int, n_layers: int, n_heads: int,
                 d_ff: int, dropout: float):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.bert = BertModel(BertConfig(
            vocab_size=1,  # never read: the embeddings come in as inputs_embeds
            hidden_size=d_model,
            num_hidden_layers=n_layers,
            num_attention_heads=n_heads,
            intermediate_size=d_ff,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            max_position_embeddings=max_positions,
            type_vocab_size=1,
        ), add_pooling_layer=False)

    def forward(self, embeds: Tensor, positions: Tensor, padding: Tensor | None = None
                ) -> Tensor:
        attention = None if padding is None else (~padding).long()
        out = self.bert(inputs_embeds=embeds, position_ids=positions, attention_mask=attention)
        return out.last_hidden_state


ENCODERS = {"native": NativeEncoder, "bert": BertEncoder}


class CrossAttentionBlock(nn.Module):
    """Queries attend to a memory, then a feed-forward; pre-norm residuals. The queries do
    not attend to each other, so each reads the memory alone."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm_queries = nn.LayerNorm(d_model)
        self.norm_memory = nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, memory: Tensor, padding: Tensor | None = None
                ) -> Tensor:
        """``queries [B, m, d]`` read ``memory [B, n, d]`` (``padding [B, n]``: ignore)."""
        kv = self.norm_memory(memory)
        read, _ = self.attention(self.norm_queries(queries), kv, kv, key_padding_mask=padding,
                                 need_weights=False)
        queries = queries + self.dropout(read)
        return queries + self.dropout(self.ff(self.norm_ff(queries)))


class DilatedConvEncoder(nn.Module):
    """Residual blocks of dilated convolutions over the steps of a series, as TS2Vec's
    encoder: block ``i`` has dilation ``2**i``, so the receptive field doubles per block.

    ``x [B, T, C]`` and ``shown [B, T]`` (True: a step the encoder may read; the others
    enter as 0 with a 0 in the extra indicator channel) -> ``[B, T, d]``.
    """

    def __init__(self, in_channels: int, d_model: int, n_layers: int, dropout: float,
                 kernel_size: int = 3):
        super().__init__()
        self.input = nn.Conv1d(in_channels + 1, d_model, 1)
        self.blocks = nn.ModuleList(
            _DilatedBlock(d_model, kernel_size, 2 ** i, dropout) for i in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, shown: Tensor) -> Tensor:
        shown = shown[..., None].to(x.dtype)
        hidden = self.input(torch.cat([x * shown, shown], -1).transpose(1, 2))
        for block in self.blocks:
            hidden = block(hidden)
        return self.norm(hidden.transpose(1, 2))


class _DilatedBlock(nn.Module):
    def __init__(self, d_model: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        pad = (kernel_size - 1) * dilation // 2
        self.layers = nn.Sequential(
            nn.GELU(), nn.Conv1d(d_model, d_model, kernel_size, padding=pad, dilation=dilation),
            nn.GELU(), nn.Conv1d(d_model, d_model, kernel_size, padding=pad, dilation=dilation),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x)
