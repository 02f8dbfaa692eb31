"""What :mod:`vecembed.providers.onnx_build` exports to ONNX: vecembed's BERT encoder, written for tracing.

Imported only when an export is needed (it imports torch). The torch backend's
encoder picks its attention path from the mask at run time (``if`` on data) and
uses ``scaled_dot_product_attention``; a traced graph must not bake in one
branch, so the export runs the same weights through the classic BERT attention
(additive mask, explicit softmax), which is also the pattern ONNX Runtime fuses
into its ``Attention`` kernel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from vecembed._deps import require
from vecembed.errors import ModelLoadError
from vecembed.model_config import ModelConfig
from vecembed.pipeline import Batch
from vecembed.providers.bert import SUPPORTED_MODEL_TYPES, BertEncoder, load_bert

__all__ = ["ExportableBert", "build"]


class ExportableBert(nn.Module):
    """Runs a loaded :class:`BertEncoder`'s weights with trace-friendly attention; returns the last hidden state."""

    def __init__(self, encoder: BertEncoder, heads: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = heads

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        enc: Any = self.encoder  # submodules are typed as Module | Tensor by torch; they are ours
        x: torch.Tensor = enc.embeddings(input_ids, token_type_ids)
        # (batch, 1, 1, seq): 0 where a key is real, the most negative float where it is padding (as HF)
        additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in enc.encoder.layer:
            sa = layer.attention.self
            b, s, h = x.shape
            d = h // self.heads
            q = sa.query(x).view(b, s, self.heads, d).transpose(1, 2)
            k = sa.key(x).view(b, s, self.heads, d).transpose(1, 2)
            v = sa.value(x).view(b, s, self.heads, d).transpose(1, 2)
            scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d)) + additive
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, s, h)
            out = layer.attention.output
            x = out.LayerNorm(out.dense(ctx) + x)
            ff = layer.output.dense(layer.act(layer.intermediate.dense(x)))
            x = layer.output.LayerNorm(ff + x)
        return x


class _HiddenState(nn.Module):
    """A transformers ``AutoModel`` reduced to its last hidden state (for architectures vecembed does not build)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.model(  # type: ignore[no-any-return]
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def build(config: ModelConfig, torch_module: Any = torch) -> tuple[nn.Module, Any]:
    """``(module to export, reference forward)``; the reference is the torch backend's own forward."""
    cfg = config.hf_config
    native = (
        cfg.get("model_type") in SUPPORTED_MODEL_TYPES
        and cfg.get("position_embedding_type", "absolute") == "absolute"
        and (config.transformer_path / "model.safetensors").is_file()
    )
    if native:
        encoder = load_bert(config.transformer_path, cfg, device=torch.device("cpu"), dtype=torch.float32)
        module: nn.Module = ExportableBert(encoder, int(cfg["num_attention_heads"])).eval()
        reference: nn.Module = encoder
    else:
        arch = ", ".join(config.architectures) or cfg.get("model_type") or "unknown"
        transformers = require("transformers", "torch", f"exporting architecture {arch} to ONNX")
        try:
            model = transformers.AutoModel.from_pretrained(
                str(config.transformer_path), local_files_only=True,
                trust_remote_code=False,  # never run code from a model folder (auto_map)
            ).eval()
        except Exception as exc:
            raise ModelLoadError(f"cannot load {config.transformer_path} ({arch}) for export: {exc}",
                                 path=str(config.transformer_path)) from exc
        module = _HiddenState(model).eval()
        reference = module

    def forward(batch: Batch) -> NDArray[np.float32]:
        with torch.inference_mode():
            hidden = reference(
                torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask),
                torch.from_numpy(batch.token_type_ids),
            )
        out: NDArray[np.float32] = hidden.float().numpy()
        return out

    return module, forward
