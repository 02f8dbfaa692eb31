"""The shared text pipeline: validation, tokenisation, batch planning, pooling, normalisation."""

from vecembed.pipeline.batching import plan_batches
from vecembed.pipeline.pooling import l2_normalize, pool
from vecembed.pipeline.text import Batch, ForwardFn, TextPipeline, Tokenized, truncation_reported_by_caller
from vecembed.pipeline.validate import validate_texts

__all__ = [
    "Batch",
    "ForwardFn",
    "TextPipeline",
    "Tokenized",
    "l2_normalize",
    "plan_batches",
    "pool",
    "truncation_reported_by_caller",
    "validate_texts",
]
