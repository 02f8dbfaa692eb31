"""TorchProvider: the candle-style BERT encoder of :mod:`vecembed.providers.bert` over the shared pipeline.

Other architectures run through ``transformers.AutoModel`` when transformers is
installed; otherwise the error names the architecture.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed._deps import importable, require
from vecembed.errors import InvalidInputError, ModelLoadError, ProviderUnavailableError
from vecembed.pipeline import Batch
from vecembed.providers.transformer import TransformerProvider

__all__ = ["TorchProvider", "pick_device"]

_DTYPES = ("float32", "bfloat16", "float16")


def pick_device(device: str = "auto") -> str:
    """``auto`` -> cuda if available, else mps, else cpu; anything else is checked and returned."""
    torch = require("torch", "torch", "the torch backend")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ProviderUnavailableError(f"device {device!r} was asked for but CUDA is not available here")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ProviderUnavailableError(f"device {device!r} was asked for but MPS is not available here")
    if kind not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(f"device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {device!r}")
    return device


class TorchProvider(TransformerProvider):
    """Embeddings from a BERT-family model in plain PyTorch (``pip install 'vecembed[torch]'``).

    Options beyond :class:`TransformerProvider`'s: ``device`` (``auto``: cuda > mps
    > cpu), ``dtype`` (``float32`` default; ``bfloat16``/``float16`` opt-in),
    ``threads`` (CPU intra-op threads; default torch's own choice).
    """

    backend = "torch"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        dtype: str = "float32",
        threads: int | None = None,
        **options: Any,
    ) -> None:
        if dtype not in _DTYPES:
            raise InvalidInputError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        self._torch = require("torch", "torch", "the torch backend")
        require("safetensors", "torch", "reading model weights")
        self._device = pick_device(device)
        self._dtype = dtype
        if threads is not None:
            self._torch.set_num_threads(threads)
        self._uses_transformers = False
        self._model: Any = None
        super().__init__(model, **options)

    def _load_backend(self) -> int:
        from vecembed.providers.bert import SUPPORTED_MODEL_TYPES, load_bert

        torch = self._torch
        cfg = self.config.hf_config
        dtype = getattr(torch, self._dtype)
        device = torch.device(self._device)
        native = (
            cfg.get("model_type") in SUPPORTED_MODEL_TYPES
            and cfg.get("position_embedding_type", "absolute") == "absolute"
            and (self.config.transformer_path / "model.safetensors").is_file()
        )
        if native:
            self._model = load_bert(self.config.transformer_path, cfg, device=device, dtype=dtype)
            return int(cfg["hidden_size"])
        arch = ", ".join(self.config.architectures) or cfg.get("model_type") or "unknown"
        if not importable("transformers"):
            raise ModelLoadError(
                f"architecture {arch!r} is not built into vecembed's torch backend (it runs BERT-family "
                "encoders); install transformers to run it through transformers.AutoModel: pip install transformers",
                path=str(self.config.transformer_path),
            )
        transformers = require("transformers", "torch", f"running architecture {arch}")
        try:
            model = transformers.AutoModel.from_pretrained(
                str(self.config.transformer_path), torch_dtype=dtype, local_files_only=True,
                trust_remote_code=False,  # never run code from a model folder (auto_map)
            )
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for files it cannot use
            raise ModelLoadError(f"transformers could not load {self.config.transformer_path} ({arch}): {exc}",
                                 path=str(self.config.transformer_path)) from exc
        self._model = model.to(device).eval()
        self._uses_transformers = True
        return int(self._model.config.hidden_size)

    def _forward(self, batch: Batch) -> NDArray[Any]:
        torch = self._torch
        dev = self._device
        ids = torch.from_numpy(batch.input_ids).to(dev)
        mask = torch.from_numpy(batch.attention_mask).to(dev)
        types = torch.from_numpy(batch.token_type_ids).to(dev)
        with torch.inference_mode():
            if self._uses_transformers:
                hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
            else:
                hidden = self._model(ids, mask, types)
        out: NDArray[np.float32] = hidden.float().cpu().numpy()
        return out

    def _device_name(self) -> str:
        return self._device

    def _dtype_name(self) -> str:
        return self._dtype

    def close(self) -> None:
        if not self._closed:
            self._model = None
        super().close()
