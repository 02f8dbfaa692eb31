"""A BERT-family encoder in plain PyTorch (candle-style): embeddings, attention, feed-forward, LayerNorm.

Covers the encoders most embedding models use (BERT, MiniLM, BGE, E5, GTE-base
style: ``model_type == "bert"`` with absolute positions). The module names
mirror Hugging Face's so a ``model.safetensors`` loads with ``assign=True``
(no copy of the memory-mapped weights on CPU); Q, K and V are fused into one
matrix after loading, so attention costs one GEMM instead of three.
Imported only by :mod:`vecembed.providers.torch`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vecembed.errors import ModelLoadError, ModelNotFoundError

__all__ = ["SUPPORTED_MODEL_TYPES", "BertEncoder", "load_bert"]

SUPPORTED_MODEL_TYPES = ("bert",)
#: config.json keys the encoder is built from (the rest have BERT's defaults).
REQUIRED_CONFIG_KEYS = (
    "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size",
    "max_position_embeddings",
)

_ACTIVATIONS: dict[str, Any] = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


class _Embeddings(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        h = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], h)
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(max(cfg.get("type_vocab_size", 2), 1), h)
        self.LayerNorm = nn.LayerNorm(h, eps=cfg.get("layer_norm_eps", 1e-12))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)[None, :, :]
        return self.LayerNorm(x)  # type: ignore[no-any-return]


class _SelfAttention(nn.Module):
    def __init__(self, h: int) -> None:
        super().__init__()
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)


class _AttentionOutput(nn.Module):
    def __init__(self, h: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(h, h)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)


class _Attention(nn.Module):
    def __init__(self, h: int, eps: float) -> None:
        super().__init__()
        self.self = _SelfAttention(h)
        self.output = _AttentionOutput(h, eps)


class _Dense(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.dense = nn.Linear(i, o)


class _Output(nn.Module):
    def __init__(self, i: int, h: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(i, h)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)


class _Layer(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        h, i = cfg["hidden_size"], cfg["intermediate_size"]
        eps = cfg.get("layer_norm_eps", 1e-12)
        self.heads = cfg["num_attention_heads"]
        self.attention = _Attention(h, eps)
        self.intermediate = _Dense(h, i)
        self.output = _Output(i, h, eps)
        act = cfg.get("hidden_act", "gelu")
        if act not in _ACTIVATIONS:
            raise ModelLoadError(
                f"config.json: hidden_act {act!r} is not supported by vecembed's BERT encoder; "
                f"supported: {', '.join(_ACTIVATIONS)}"
            )
        self.act = _ACTIVATIONS[act]
        self.qkv_weight: torch.Tensor | None = None
        self.qkv_bias: torch.Tensor | None = None

    def fuse(self) -> None:
        sa = self.attention.self
        self.qkv_weight = torch.cat([sa.query.weight, sa.key.weight, sa.value.weight], dim=0).contiguous()
        self.qkv_bias = torch.cat([sa.query.bias, sa.key.bias, sa.value.bias], dim=0).contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, s, h = x.shape
        d = h // self.heads
        if self.qkv_weight is None:
            self.fuse()
        qkv = F.linear(x, self.qkv_weight, self.qkv_bias)  # type: ignore[arg-type]
        q, k, v = qkv.view(b, s, 3, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0 / math.sqrt(d))
        ctx = ctx.transpose(1, 2).reshape(b, s, h)
        attn = self.attention.output
        x = attn.LayerNorm(attn.dense(ctx) + x)
        ff = self.output.dense(self.act(self.intermediate.dense(x)))
        return self.output.LayerNorm(ff + x)  # type: ignore[no-any-return]


class _Encoder(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(cfg) for _ in range(cfg["num_hidden_layers"]))


class BertEncoder(nn.Module):
    """BERT encoder returning the last hidden state ``(batch, seq, hidden)``."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Encoder(cfg)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        x = self.embeddings(input_ids, token_type_ids)
        mask: torch.Tensor | None = None
        if not bool(attention_mask.all()):
            # boolean (batch, 1, 1, seq): True = attend. Padded keys are excluded, as in HF's additive mask.
            mask = attention_mask.bool()[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x  # type: ignore[no-any-return]

    def fuse(self) -> None:
        for layer in self.encoder.layer:
            layer.fuse()  # type: ignore[operator]


_PREFIXES = ("bert.", "model.", "encoder_model.")


def _state_dict(weights: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        raw = load_file(str(weights), device="cpu")  # memory-mapped by safetensors
    except Exception as exc:  # safetensors' own error type for a truncated or foreign file
        raise ModelLoadError(f"{weights}: not readable as safetensors ({exc})", path=str(weights)) from exc
    out: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if key.startswith(("embeddings.", "encoder.")) and "position_ids" not in key:
            out[key] = tensor
    return out


def load_bert(model_dir: Path, cfg: dict[str, Any], *, device: torch.device, dtype: torch.dtype) -> BertEncoder:
    """Build a :class:`BertEncoder` from ``model_dir/model.safetensors``, on ``device`` in ``dtype``, eval mode."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelNotFoundError(str(model_dir), [f"{weights}: absent (the torch backend reads safetensors weights)"])
    absent = [key for key in REQUIRED_CONFIG_KEYS if not isinstance(cfg.get(key), int)]
    if absent:
        raise ModelLoadError(f"{model_dir / 'config.json'}: a BERT config needs {', '.join(absent)}",
                             path=str(model_dir / "config.json"))
    with torch.device("meta"):
        model = BertEncoder(cfg)
    state = _state_dict(weights)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # a tensor whose shape differs from the config's
        raise ModelLoadError(f"{weights} does not match its config.json: {exc}", path=str(weights)) from exc
    if missing or unexpected:
        raise ModelLoadError(
            f"{weights} does not match a BERT encoder of this config: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}",
            path=str(weights),
        )
    model = model.to(device=device, dtype=dtype).eval()
    model.fuse()
    return model
