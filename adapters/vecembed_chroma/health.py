"""health_check: one HealthReport for the Chroma client, a collection's recorded identity, and the provider."""

from __future__ import annotations

from collections.abc import Callable

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from vecembed.errors import DimensionMismatchError, VecembedError
from vecembed.health import timed_check
from vecembed.identity import CollectionIdentity, verify_identity
from vecembed.protocol import EmbeddingProvider
from vecembed.types import HealthReport
from vecembed_chroma.collections import GuardedCollection
from vecembed_chroma.embedding_function import ChromaEmbeddingFunction
from vecembed_chroma.store import ChromaStore

__all__ = ["health_check"]


def _collection_report(store: ChromaStore, ours: tuple[CollectionIdentity, bool] | None) -> HealthReport:
    """What the ``chroma`` store reads from the collection (the one reader), and the one check against ``ours``."""

    def check() -> tuple[bool, str, dict[str, bool]]:
        name = store.collection
        # Re-read through the store: the object the caller holds may be stale (deleted, modified elsewhere).
        state = store.state()
        if state is None:
            return False, f"collection {name!r} does not exist", {"exists": False}
        recorded = state.identity
        count = state.count if state.count is not None else store.count()
        checks = {"exists": True, "dimension": True, "fingerprint": True}
        problems: list[str] = []
        if recorded is not None and state.dimension is not None and recorded.dimension != state.dimension:
            checks["dimension"] = False
            problems.append(
                f"recorded dimension {recorded.dimension} differs from the stored vectors' {state.dimension}"
            )
        if ours is not None:
            try:
                # The one identity check every store uses; its message is the finding.
                verify_identity(
                    name,
                    ours[0],
                    recorded=recorded,
                    source=state.source,
                    stored_dimension=state.dimension,
                    stored_distance=state.distance,
                    count=count,
                    normalized=ours[1],
                )
            except DimensionMismatchError as exc:
                checks["dimension"] = False
                problems.append(str(exc))
            except VecembedError as exc:
                checks["fingerprint"] = False
                problems.append(str(exc))
        dimension = state.dimension if state.dimension is not None else (recorded.dimension if recorded else None)
        summary = f"{name!r}: {count} records, dimension {dimension}, model {recorded.model if recorded else None!r}"
        if problems:
            return False, f"{summary}; " + "; ".join(problems), checks
        return True, summary, checks

    return timed_check("collection", check)


def health_check(
    client: ClientAPI,
    collection: str | Collection | None = None,
    provider: EmbeddingProvider | ChromaEmbeddingFunction | None = None,
) -> HealthReport:
    """One report for the Chroma client (heartbeat), a collection and the provider. Never raises.

    ``collection`` (a name or a collection object) adds a check that it exists and
    that its recorded dimension and fingerprint, and the size of its stored vectors,
    agree with each other and with ``provider``. ``provider`` (or an embedding
    function; for a :class:`GuardedCollection` its own by default) adds the
    provider's probe. ``report.ok`` is true only when every part is.
    """
    name = "" if collection is None else collection if isinstance(collection, str) else collection.name
    # Built on the chroma store: its heartbeat, and the collection state it reads before every write.
    store = ChromaStore(client, name, location="client")
    parts: list[HealthReport] = [store.health()]
    if provider is None and isinstance(collection, GuardedCollection):
        provider = collection.embedding_function
    ours: tuple[CollectionIdentity, bool] | None = None
    probe: Callable[[], HealthReport] | None = None
    if isinstance(provider, ChromaEmbeddingFunction):
        ef = provider
        ours = ef.identity, ef.normalized
        # .provider may load the model from the stored config; a failure there is the finding.
        probe = lambda: ef.provider.health_check()  # noqa: E731
    elif provider is not None:
        plain = provider
        try:
            info = plain.info
            ours = CollectionIdentity.of(info), info.normalized
        except Exception as exc:  # a health check never raises: a provider without info is the finding
            parts.append(
                HealthReport(ok=False, latency_ms=0.0, detail=f"{type(exc).__name__}: {exc}", component="provider")
            )
        else:
            probe = plain.health_check
    if collection is not None:
        parts.append(_collection_report(store, ours))
    if probe is not None:
        parts.append(_probe(probe))
    return HealthReport.combine("vecembed_chroma", parts)


def _probe(probe: Callable[[], HealthReport]) -> HealthReport:
    def check() -> tuple[bool, str, dict[str, bool]]:
        # provider.health_check() promises not to raise; a user's own provider might anyway.
        report = probe()
        return report.ok, report.detail, dict(report.checks)

    return timed_check("provider", check)
