"""health_check: one HealthReport for the Chroma client, a collection's recorded identity, and the provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from vecembed.errors import DimensionMismatchError, VecembedError
from vecembed.health import timed_check
from vecembed.identity import CollectionIdentity, verify_identity
from vecembed.protocol import EmbeddingProvider
from vecembed.types import HealthReport
from vecembed_chroma.collections import GuardedCollection, recorded_identity, stored_dimension
from vecembed_chroma.embedding_function import ChromaEmbeddingFunction

__all__ = ["health_check"]


def _heartbeat(client: ClientAPI) -> HealthReport:
    def check() -> tuple[bool, str, dict[str, bool]]:
        beat = client.heartbeat()  # nanoseconds since the epoch on the server
        alive = isinstance(beat, int) and beat > 0
        if not alive:
            return False, f"unexpected heartbeat {beat!r}", {"heartbeat": False}
        return True, f"heartbeat ok (chroma {client.get_version()})", {"heartbeat": True}

    return timed_check("chroma", check)


class _Identity(NamedTuple):
    model: str
    fingerprint: str
    dimension: int


def _collection_report(client: ClientAPI, collection: str | Collection, ours: _Identity | None) -> HealthReport:
    def check() -> tuple[bool, str, dict[str, bool]]:
        name = collection if isinstance(collection, str) else collection.name
        try:
            # Re-read it: the object the caller holds may be stale (deleted, modified elsewhere).
            native = client.get_collection(name, embedding_function=None)
        except Exception as exc:
            return False, f"collection {name!r} cannot be opened: {type(exc).__name__}: {exc}", {"exists": False}
        recorded = recorded_identity(native)
        stored = stored_dimension(native)
        count = native.count()
        checks = {"exists": True, "dimension": True, "fingerprint": True}
        problems: list[str] = []
        if recorded.dimension is not None and stored is not None and recorded.dimension != stored:
            checks["dimension"] = False
            problems.append(f"recorded dimension {recorded.dimension} differs from the stored vectors' {stored}")
        if ours is not None:
            known = None
            if recorded.fingerprint is not None:
                known = CollectionIdentity(fingerprint=recorded.fingerprint, model=recorded.model or "unknown model",
                                           dimension=recorded.dimension or ours.dimension)
            try:
                # The one identity check every store uses; its message is the finding.
                verify_identity(
                    name,
                    CollectionIdentity(fingerprint=ours.fingerprint, model=ours.model, dimension=ours.dimension),
                    recorded=known,
                    stored_dimension=stored if stored is not None else recorded.dimension,
                    count=count,
                )
            except DimensionMismatchError as exc:
                checks["dimension"] = False
                problems.append(str(exc))
            except VecembedError as exc:
                checks["fingerprint"] = False
                problems.append(str(exc))
        summary = (
            f"{name!r}: {count} records, dimension {stored if stored is not None else recorded.dimension}, "
            f"model {recorded.model!r}"
        )
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
    parts: list[HealthReport] = [_heartbeat(client)]
    if provider is None and isinstance(collection, GuardedCollection):
        provider = collection.embedding_function
    ours: _Identity | None = None
    probe: Callable[[], HealthReport] | None = None
    if isinstance(provider, ChromaEmbeddingFunction):
        ef = provider
        ours = _Identity(ef.model, ef.fingerprint, ef.dimension)
        # .provider may load the model from the stored config; a failure there is the finding.
        probe = lambda: ef.provider.health_check()  # noqa: E731
    elif provider is not None:
        plain = provider
        try:
            info = plain.info
            ours = _Identity(info.name, info.fingerprint, info.dimension)
        except Exception as exc:  # a health check never raises: a provider without info is the finding
            parts.append(
                HealthReport(ok=False, latency_ms=0.0, detail=f"{type(exc).__name__}: {exc}", component="provider")
            )
        else:
            probe = plain.health_check
    if collection is not None:
        parts.append(_collection_report(client, collection, ours))
    if probe is not None:
        parts.append(_probe(probe))
    return HealthReport.combine("vecembed_chroma", parts)


def _probe(probe: Callable[[], HealthReport]) -> HealthReport:
    def check() -> tuple[bool, str, dict[str, bool]]:
        # provider.health_check() promises not to raise; a user's own provider might anyway.
        report = probe()
        return report.ok, report.detail, dict(report.checks)

    return timed_check("provider", check)
