"""The ``map_batches`` callable classes: one provider per actor, loaded once, every batch embedded on it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import ray
from ray.data import ActorPoolStrategy
from ray.data.block import BlockAccessor

from vecembed.distributed.rows import PENDING, TO_EMBED, TRUNCATED_COLUMN, classify, prepare_rows, record_columns
from vecembed.distributed.specs import ProviderSpec, StoreSpec, apply_env
from vecembed.errors import InvalidInputError
from vecembed.ingest import BatchWriter, embed_sorted, embed_sorted_counted
from vecembed.pipeline.text import truncation_reported_by_caller
from vecembed.records import check_text

__all__ = ["DEFAULT_DATASET_BATCH_SIZE", "BatchEmbedder", "RecordEmbedder", "actor_pool"]


#: Rows per ``map_batches`` call: large enough that one provider call batches well and a store write costs
#: little per row, small enough that a retried task redoes little work.
DEFAULT_DATASET_BATCH_SIZE = 256


class BatchEmbedder:
    """The ``map_batches`` callable class of :func:`embed_dataset`: one provider per actor, every batch on it.

    Ray builds it once per actor (``fn_constructor_kwargs``), so the model loads once per actor, not per
    batch. ``__call__`` adds ``output_column`` (float32 ``(n, dim)``) to a numpy batch.
    """

    def __init__(
        self,
        spec: ProviderSpec,
        *,
        text_column: str = "text",
        output_column: str = "embedding",
        env: Mapping[str, str] | None = None,
    ) -> None:
        apply_env(env)
        self.provider = spec.load()
        self.text_column = text_column
        self.output_column = output_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise InvalidInputError(
                f"the dataset has no column {self.text_column!r} (columns: {', '.join(batch)}); "
                "pass text_column="
            )
        texts = [str(t) if isinstance(t, np.str_) else t for t in batch[self.text_column]]
        for i, text in enumerate(texts):
            check_text(text, f"the row with text {text!r} (row {i} of its batch)")
        batch[self.output_column] = embed_sorted(self.provider, texts)
        return batch


class RecordEmbedder(BatchEmbedder):
    """The ``map_batches`` class of :func:`ingest_dataset`: validate, look up what is stored, embed the rest.

    Rows become prepared records (:func:`prepare_rows`); with ``store`` (a server) the stored hashes of the
    batch are looked up first, so documents stored unchanged are not embedded again (a re-run embeds
    nothing). Returns the prepared columns (id, text, metadata JSON, hash, state), the vectors (zero rows
    for what is not written) and the batch's truncation count (:data:`TRUNCATED_COLUMN`, on its first row;
    -1 where the provider does not count). The actors log no truncation: the driver reports the job's total.
    """

    def __init__(
        self,
        spec: ProviderSpec,
        *,
        id_column: str = "id",
        text_column: str = "text",
        output_column: str = "embedding",
        metadata_columns: Sequence[str] | None = None,
        nested: bool = True,
        store: StoreSpec | None = None,
        skip_unchanged: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(spec, text_column=text_column, output_column=output_column, env=env)
        self.id_column = id_column
        self.metadata_columns = None if metadata_columns is None else list(metadata_columns)
        self.nested = nested
        self.skip_unchanged = skip_unchanged
        # The engine's lookup of stored hashes, so unchanged documents are not embedded again.
        self.writer = None if store is None else BatchWriter(*store.open(self.provider), skip_unchanged=skip_unchanged)

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        rows = BlockAccessor.for_block(batch).to_arrow().to_pylist()
        records, states = prepare_rows(rows, id_column=self.id_column, text_column=self.text_column,
                                       metadata_columns=self.metadata_columns, nested=self.nested)
        if self.writer is not None:
            stored = self.writer.stored([r.id for r, s in zip(records, states, strict=True) if s == PENDING])
            states = classify(records, states, stored)
        todo = [i for i, s in enumerate(states) if s in TO_EMBED]
        vectors = np.zeros((len(records), self.provider.info.dimension), dtype=np.float32)
        truncated: int | None = 0
        if todo:
            with truncation_reported_by_caller():  # the driver reports the job's total once
                result = embed_sorted_counted(self.provider, [records[i].text for i in todo])
            vectors[todo], truncated = result.vectors, result.truncated
        columns = record_columns(records, states, vectors, self.output_column)
        # -1: this provider does not count (the report says n/a); the count rides on the first row
        column = np.zeros(len(records), dtype=np.int32)
        if len(records):
            column[0] = -1 if truncated is None else truncated
        columns[TRUNCATED_COLUMN] = column
        return columns


def actor_pool(concurrency: int | tuple[int, int] | None, num_cpus: float) -> ActorPoolStrategy:
    """The actor pool for ``concurrency`` (an int, a ``(min, max)`` pair, or None: up to the CPUs / ``num_cpus``)."""
    if concurrency is None:
        cpus = (ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
                if ray.is_initialized() else os.cpu_count() or 1)
        return ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus // max(num_cpus, 1e-9))))
    if isinstance(concurrency, tuple):
        low, high = concurrency
        return ActorPoolStrategy(min_size=low, max_size=high)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInputError(f"concurrency must be a positive int or a (min, max) pair, got {concurrency!r}")
    return ActorPoolStrategy(size=concurrency)
