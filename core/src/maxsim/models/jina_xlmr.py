"""Native XLM-RoBERTa backbone with rotary positions, as used by jina-colbert-v2.

Post-norm transformer: embeddings (word + token type 0) -> LayerNorm, then per layer
fused QKV projection, rotary positions on q and k, attention, residual + LayerNorm,
erf-GELU MLP, residual + LayerNorm. No absolute position embeddings, no pooling.

Padded batches are unpadded: the linear layers run on the real tokens only, and
attention runs per sequence (or through flash-attn's varlen kernel on CUDA).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

PREFIX = "roberta."


@dataclass(frozen=True)
class JinaXLMRConfig:
    """The fields of a jina-colbert-v2 `config.json` that the forward pass uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    layer_norm_eps: float
    rotary_emb_base: float

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> JinaXLMRConfig:
        missing = [name for name in ("rotary_emb_base", "hidden_size") if name not in config]
        if missing:
            raise ValueError(f"config.json lacks {missing} required for a rotary XLM-RoBERTa model")
        return cls(
            vocab_size=int(config["vocab_size"]),
            hidden_size=int(config["hidden_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=int(config["num_attention_heads"]),
            intermediate_size=int(config["intermediate_size"]),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-5)),
            rotary_emb_base=float(config["rotary_emb_base"]),
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def is_jina_xlmr_config(config: Mapping[str, Any]) -> bool:
    """True for an XLM-RoBERTa config with rotary positions (the jina-colbert-v2 family)."""
    return (
        config.get("model_type") == "xlm-roberta"
        and config.get("position_embedding_type") == "rotary"
    )


def _flash_varlen() -> Any | None:
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        return None
    return flash_attn_varlen_func


def flash_attention_available() -> bool:
    """True when flash-attn's varlen kernel imports (the `maxsim[flash]` extra)."""
    return _flash_varlen() is not None


class RotaryEmbedding:
    """Non-interleaved ("rotate half") rotary embedding over the full head dim.

    Not a module on purpose: its frequencies stay float32 whatever dtype the model is
    cast to (bfloat16 frequencies would drift by about a radian at position 500).
    """

    def __init__(self, head_dim: int, base: float) -> None:
        self.head_dim = head_dim
        self.base = base

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of shape [tokens, 1, head_dim] in float32 for integer positions."""
        steps = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=positions.device)
        inv_freq = 1.0 / self.base ** (steps / self.head_dim)
        angles = torch.outer(positions.to(torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1).unsqueeze(1)
        return angles.cos(), angles.sin()

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate `x` [tokens, heads, head_dim] by the angles behind `cos`/`sin`."""
        x32 = x.float()
        first, second = x32.chunk(2, dim=-1)
        rotated = torch.cat((-second, first), dim=-1)
        return (x32 * cos + rotated * sin).to(x.dtype)


class Mixer(nn.Module):
    """Fused QKV and output projections (checkpoint names `mixer.Wqkv`, `mixer.out_proj`)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.Wqkv = nn.Linear(hidden, 3 * hidden)
        self.out_proj = nn.Linear(hidden, hidden)


class MLP(nn.Module):
    """The feed-forward block (checkpoint names `mlp.fc1`, `mlp.fc2`)."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, intermediate)
        self.fc2 = nn.Linear(intermediate, hidden)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(h)))


class Layer(nn.Module):
    """One post-norm transformer layer; parameter names follow the checkpoint."""

    def __init__(self, config: JinaXLMRConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.mixer = Mixer(config.hidden_size)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MLP(config.hidden_size, config.intermediate_size)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, h: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        qkv = rearrange(
            self.mixer.Wqkv(h), "t (three h d) -> three t h d", three=3, h=self.num_heads
        )
        q = RotaryEmbedding.rotate(qkv[0], batch.cos, batch.sin)
        k = RotaryEmbedding.rotate(qkv[1], batch.cos, batch.sin)
        attended = batch.attend(q, k, qkv[2])
        h = self.norm1(self.mixer.out_proj(rearrange(attended, "t h d -> t (h d)")) + h)
        return self.norm2(self.mlp(h) + h)


class Embeddings(nn.Module):
    """Word plus token-type-0 embeddings (no absolute positions: rotary does that)."""

    def __init__(self, config: JinaXLMRConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(1, config.hidden_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(tokens) + self.token_type_embeddings.weight[0]


class Encoder(nn.Module):
    """The layer stack (checkpoint names `encoder.layers.{i}`)."""

    def __init__(self, config: JinaXLMRConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))

    def forward(self, h: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h, batch)
        return h


@dataclass
class PackedBatch:
    """Sequences laid end to end: token i of sequence s sits at `cu_seqlens[s] + i`.

    `flash_varlen` is flash-attn's varlen kernel when the model runs it, else None (SDPA).
    """

    lengths: list[int]
    cu_seqlens: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    flash_varlen: Any | None

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Self-attention within each sequence; inputs and output are [tokens, heads, dim]."""
        if self.flash_varlen is not None:
            longest = max(self.lengths)
            return self.flash_varlen(q, k, v, self.cu_seqlens, self.cu_seqlens, longest, longest)
        if len(set(self.lengths)) == 1:
            return _sdpa(q, k, v, len(self.lengths))
        pieces = zip(
            q.split(self.lengths), k.split(self.lengths), v.split(self.lengths), strict=True
        )
        return torch.cat([_sdpa(qs, ks, vs, 1) for qs, ks, vs in pieces])


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sequences: int) -> torch.Tensor:
    """Attention over `sequences` equal-length sequences packed as [tokens, heads, dim]."""
    shape = "(b l) h d -> b h l d"
    out = F.scaled_dot_product_attention(
        rearrange(q, shape, b=sequences),
        rearrange(k, shape, b=sequences),
        rearrange(v, shape, b=sequences),
    )
    return rearrange(out, "b h l d -> (b l) h d")


class JinaXLMRModel(nn.Module):
    """XLM-RoBERTa with rotary positions; returns the last hidden state.

    Example:
        >>> config = JinaXLMRConfig(100, 8, 1, 2, 16, 1e-5, 10000.0)
        >>> model = JinaXLMRModel(config).eval()
        >>> ids = torch.tensor([[0, 5, 2, 1]])
        >>> model(ids, torch.tensor([[1, 1, 1, 0]])).shape
        torch.Size([1, 4, 8])
    """

    def __init__(self, config: JinaXLMRConfig, attn_implementation: str = "sdpa") -> None:
        super().__init__()
        self.config = config
        self.attn_implementation = attn_implementation
        self.hidden_size = config.hidden_size
        self.embeddings = Embeddings(config)
        self.emb_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = Encoder(config)
        self.rotary = RotaryEmbedding(config.head_dim, config.rotary_emb_base)

    @classmethod
    def from_state_dict(
        cls,
        config: JinaXLMRConfig,
        state_dict: Mapping[str, torch.Tensor],
        *,
        dtype: torch.dtype,
        attn_implementation: str = "sdpa",
    ) -> JinaXLMRModel:
        """Build the model from checkpoint tensors named `roberta.*` (the pooler is ignored)."""
        with torch.device("meta"):
            model = cls(config, attn_implementation)
        own = {
            name[len(PREFIX) :]: tensor.to(dtype)
            for name, tensor in state_dict.items()
            if name.startswith(PREFIX) and not name.startswith(PREFIX + "pooler.")
        }
        expected = set(model.state_dict())
        missing, unexpected = expected - own.keys(), own.keys() - expected
        if missing or unexpected:
            raise ValueError(
                "model.safetensors does not match the jina-colbert-v2 layout: "
                f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        model.load_state_dict(own, assign=True, strict=True)
        return model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states [batch, length, hidden] for right-padded `input_ids`.

        Positions where `attention_mask` is 0 are padding: they are neither attended to
        nor computed, and come back as zeros.
        """
        mask = attention_mask.bool()
        lengths = mask.sum(dim=1)
        if not torch.equal(
            mask, torch.arange(mask.shape[1], device=mask.device) < lengths[:, None]
        ):
            raise ValueError("attention_mask must be right-padded: ones first, then zeros")
        tokens = input_ids[mask]
        batch = self._pack(lengths)
        h = self.encoder(self.emb_ln(self.embeddings(tokens)), batch)
        out = h.new_zeros((*input_ids.shape, h.shape[-1]))
        out[mask] = h
        return out

    def _pack(self, lengths: torch.Tensor) -> PackedBatch:
        device = lengths.device
        cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
        starts = torch.repeat_interleave(cu_seqlens[:-1], lengths)
        positions = torch.arange(int(cu_seqlens[-1]), device=device) - starts
        cos, sin = self.rotary.cos_sin(positions)
        use_flash = self.attn_implementation == "flash_attention_2" and device.type == "cuda"
        flash_varlen = _flash_varlen() if use_flash else None
        return PackedBatch(lengths.tolist(), cu_seqlens, cos, sin, flash_varlen)
