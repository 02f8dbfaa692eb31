"""Where a Qdrant collection gets created for a provider, and where an existing one is checked against it.

A collection created here records the provider's vector space in the
collection's own ``metadata`` (Qdrant >= 1.16)::

    vecembed:fingerprint   ModelInfo.fingerprint (what is compared)
    vecembed:model         ModelInfo.name        (what the messages show)
    vecembed:dimension     ModelInfo.dimension
    vecembed:vector_name   the named vector, or "" for the unnamed one
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qdrant_client import models

from vecembed.errors import DimensionMismatchError, InvalidInputError, ModelMismatchError, VecembedError
from vecembed.types import ModelInfo

__all__ = [
    "FINGERPRINT_KEY",
    "MODEL_KEY",
    "CollectionState",
    "collection_metadata",
    "default_distance",
    "inspect_collection",
]

FINGERPRINT_KEY = "vecembed:fingerprint"
MODEL_KEY = "vecembed:model"
DIMENSION_KEY = "vecembed:dimension"
VECTOR_NAME_KEY = "vecembed:vector_name"


def default_distance(info: ModelInfo) -> models.Distance:
    """Cosine: the similarity sentence-transformers models are trained and scored with.

    For a normalised model cosine equals the dot product, so the scores are the
    cosine similarities users expect either way.
    """
    return models.Distance.COSINE


def accepted_distances(info: ModelInfo, distance: models.Distance | None) -> set[models.Distance]:
    """Distances an existing collection may have: exactly the one asked for, or — when none was asked for —
    cosine, and also dot for a normalised model (identical scores on unit vectors)."""
    if distance is not None:
        return {distance}
    out = {default_distance(info)}
    if info.normalized:
        out.add(models.Distance.DOT)
    return out


def collection_metadata(info: ModelInfo, vector_name: str | None) -> dict[str, Any]:
    """The metadata recorded in a collection created for ``info``."""
    return {
        FINGERPRINT_KEY: info.fingerprint,
        MODEL_KEY: info.name,
        DIMENSION_KEY: info.dimension,
        VECTOR_NAME_KEY: vector_name or "",
    }


@dataclass(frozen=True)
class CollectionState:
    """What :func:`inspect_collection` found: the problems (as the errors to raise) and what was recorded."""

    problems: list[VecembedError]
    size: int | None
    distance: models.Distance | None
    fingerprint: str | None
    recorded_model: str | None

    @property
    def ok(self) -> bool:
        return not self.problems


def _vector_params(
    name: str, info_vectors: Any, vector_name: str | None
) -> tuple[models.VectorParams | None, VecembedError | None]:
    if vector_name is None:
        if isinstance(info_vectors, models.VectorParams):
            return info_vectors, None
        names = sorted(info_vectors) if isinstance(info_vectors, Mapping) else []
        return None, InvalidInputError(
            f"collection {name!r} has named vectors {names}; pass vector_name= (one of them) to QdrantIngestor"
        )
    if isinstance(info_vectors, Mapping):
        params = info_vectors.get(vector_name)
        if isinstance(params, models.VectorParams):
            return params, None
        return None, InvalidInputError(
            f"collection {name!r} has no vector named {vector_name!r} (it has {sorted(info_vectors)}); "
            "pass one of those as vector_name=, or use another collection"
        )
    return None, InvalidInputError(
        f"collection {name!r} has one unnamed vector, not a vector named {vector_name!r}; "
        "pass vector_name=None, or use another collection"
    )


def inspect_collection(
    name: str,
    collection: models.CollectionInfo,
    info: ModelInfo,
    *,
    vector_name: str | None,
    distance: models.Distance | None,
) -> CollectionState:
    """Compare an existing collection with the provider; return every mismatch as the error that describes it.

    A collection with no recorded fingerprint is *not* a problem here: the
    caller decides whether to adopt it (see ``QdrantIngestor``).
    """
    problems: list[VecembedError] = []
    params, error = _vector_params(name, collection.config.params.vectors, vector_name)
    metadata = dict(collection.config.metadata or {})
    fingerprint = metadata.get(FINGERPRINT_KEY)
    recorded_model = metadata.get(MODEL_KEY)
    if error is not None:
        problems.append(error)
    if params is not None and params.size != info.dimension:
        problems.append(
            DimensionMismatchError(
                f"collection {name!r} holds vectors of size {params.size}"
                f"{f' (model {recorded_model!r})' if recorded_model else ''}, but {info.name!r} makes vectors of "
                f"size {info.dimension}; use the model the collection was built with, or another collection",
                expected=params.size,
                got=info.dimension,
            )
        )
    accepted = accepted_distances(info, distance)
    if params is not None and params.distance not in accepted:
        wanted = " or ".join(sorted(d.value for d in accepted))
        problems.append(
            ModelMismatchError(
                f"collection {name!r} uses distance {params.distance.value}, but this ingestor expects {wanted}; "
                f"pass distance=models.Distance.{params.distance.name} to use it as it is, or use another collection",
                expected=params.distance.value,
                got=wanted,
            )
        )
    if fingerprint is not None and fingerprint != info.fingerprint:
        problems.append(
            ModelMismatchError(
                f"collection {name!r} was written with {recorded_model or 'another model'!r} "
                f"(fingerprint {fingerprint}), but the provider is {info.name!r} ({info.backend}, fingerprint "
                f"{info.fingerprint}); vectors of two models cannot be compared — load the recorded model, "
                "or write to another collection",
                expected=str(fingerprint),
                got=info.fingerprint,
            )
        )
    return CollectionState(
        problems=problems,
        size=params.size if params is not None else None,
        distance=params.distance if params is not None else None,
        fingerprint=str(fingerprint) if fingerprint is not None else None,
        recorded_model=str(recorded_model) if recorded_model is not None else None,
    )
