"""What the model-backed providers (torch, onnx) share: find the model, read its config, build the pipeline.

A backend subclasses :class:`TransformerProvider` and supplies ``_forward``
(padded batch -> token vectors); resolution, configuration, tokenisation,
pooling, prompts, fingerprint and :class:`~vecembed.types.ModelInfo` all live here.
"""

from __future__ import annotations

import os
from typing import Any

from numpy.typing import NDArray

from vecembed.model_config import ModelConfig, load_model_config, load_tokenizer
from vecembed.pipeline import Batch, TextPipeline
from vecembed.providers.base import PipelineProvider
from vecembed.resolve import ResolvedModel, resolve_model, weights_digest
from vecembed.types import ModelInfo, make_fingerprint

__all__ = ["TransformerProvider"]


class TransformerProvider(PipelineProvider):
    """Base of the backends that run a transformer's forward pass over the shared pipeline.

    Options common to those backends: ``model`` (local dir, hub id or packaged
    model id; default all-MiniLM-L6-v2), ``batch_size`` (texts per forward),
    ``max_batch_tokens`` (padded tokens per forward), ``max_tokens`` (truncation,
    default the model's max_seq_length), ``pooling``, ``normalize``,
    ``query_prompt``, ``document_prompt`` (override the model's config),
    ``allow_download`` (None: unless offline variables are set).
    """

    backend = "transformer"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        max_tokens: int | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        allow_download: bool | None = None,
    ) -> None:
        self.resolved: ResolvedModel = resolve_model(model, allow_download=allow_download)
        self.config: ModelConfig = load_model_config(
            self.resolved.path,
            pooling=pooling,
            normalize=normalize,
            max_seq_length=max_tokens,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
        )
        self.tokenizer = load_tokenizer(self.config)
        self._dimension = self._load_backend()
        self.pipeline = TextPipeline(
            self.tokenizer,
            self._forward,
            dimension=self._dimension,
            max_tokens=self.config.max_seq_length,
            pooling=self.config.pooling,
            normalize=self.config.normalize,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            stats=self.stats,
        )
        self._info = ModelInfo(
            name=self.resolved.name,
            dimension=self._dimension,
            max_tokens=self.config.max_seq_length,
            pooling=self.config.pooling,
            normalized=self.config.normalize,
            backend=self.backend,
            device=self._device_name(),
            dtype=self._dtype_name(),
            fingerprint=make_fingerprint(
                weights_id=self._weights_id(),
                pooling=self.config.pooling,
                normalized=self.config.normalize,
                dimension=self._dimension,
                quantization=self._quantization(),
                extra=self._fingerprint_extra(),
            ),
            quantization=self._quantization(),
            query_prompt=self.config.query_prompt,
            document_prompt=self.config.document_prompt,
            agreement=self._agreement(),
            extra={"source": self.resolved.source, "path": str(self.resolved.path),
                   "revision": self.resolved.revision},
        )

    # -- what a backend provides ------------------------------------------------------------

    def _load_backend(self) -> int:
        """Load weights/session; return the output dimension."""
        raise NotImplementedError

    def _forward(self, batch: Batch) -> NDArray[Any]:
        """Token vectors ``(batch, seq, dim)`` for a padded batch."""
        raise NotImplementedError

    def _device_name(self) -> str:
        return "cpu"

    def _dtype_name(self) -> str:
        return "float32"

    def _quantization(self) -> str | None:
        return None

    def _agreement(self) -> float | None:
        return None

    def _weights_id(self) -> str:
        return weights_digest(self.config.transformer_path)

    def _fingerprint_extra(self) -> dict[str, Any]:
        # Truncation changes vectors of long texts; prompts change every vector.
        return {
            "max_tokens": self.config.max_seq_length,
            "query_prompt": self.config.query_prompt,
            "document_prompt": self.config.document_prompt,
        }

    # -- the protocol: PipelineProvider's, with the model's prompts --------------------------------

    @property
    def document_prompt(self) -> str:
        return self.config.document_prompt

    @property
    def query_prompt(self) -> str:
        return self.config.query_prompt

