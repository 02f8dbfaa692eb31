"""The one exception tree of vecembed.

Every error subclasses :class:`VecembedError` *and* the built-in exception that
matches its meaning, so callers can catch either::

    VecembedError (Exception)
    ├── ModelNotFoundError        (also LookupError)   a model= that no place could provide
    ├── ModelLoadError            (also OSError)       model files that exist but do not load (corrupt,
    │                                                  unparsable, an unsupported architecture or config)
    ├── UnknownProviderError      (also KeyError)      a backend name that is not registered
    ├── MissingDependencyError    (also ImportError)   an optional extra that is not installed
    ├── InvalidInputError         (also ValueError)    bad texts, ids or metadata; nothing was embedded or written
    │   └── ProviderNotRecordedError                   open_store without provider= on a collection that records
    │                                                  no provider to load
    ├── InvalidVectorsError       (also ValueError)    a provider's vectors that break its promise (NaN, inf, not
    │                                                  unit norm, not numbers); nothing was written or cached
    ├── DimensionMismatchError    (also ValueError)    a vector size that differs from the collection's
    ├── ModelMismatchError        (also ValueError)    a collection recorded with another model's fingerprint
    ├── ProviderUnavailableError  (also RuntimeError)  a backend or database that cannot serve right now
    │   └── IngestError                                an ingest that stopped part-way; .report counts what stays
    ├── CollectionNotFoundError   (also LookupError)   a collection opened with create=False that does not exist
    └── EventLoopError            (also RuntimeError)  a store on a native async client used where its event loop
                                                       cannot run the call (a sync call on that loop, a stopped
                                                       loop, a sync open_store)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ApiError",
    "CliError",
    "CollectionNotFoundError",
    "DimensionMismatchError",
    "EventLoopError",
    "IngestError",
    "InvalidInputError",
    "InvalidVectorsError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "ProviderNotRecordedError",
    "ProviderUnavailableError",
    "QueueFullError",
    "ShuttingDownError",
    "UnknownProviderError",
    "UnsupportedError",
    "VecembedError",
]


class VecembedError(Exception):
    """Base class of every error raised by vecembed."""


class ModelNotFoundError(VecembedError, LookupError):
    """A model could not be found in any of the places vecembed looks.

    ``tried`` lists each place that was looked at, with why it did not fit.
    """

    def __init__(self, model: str, tried: Sequence[str], hint: str = "") -> None:
        self.model = model
        self.tried = list(tried)
        lines = [f"model {model!r} was not found. Places tried, in order:"]
        lines += [f"  {i}. {place}" for i, place in enumerate(self.tried, 1)]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class ModelLoadError(VecembedError, OSError):
    """A model's files were found but cannot be used.

    Corrupt or unparsable weights, config or tokenizer; an architecture,
    sentence-transformers module or pooling that vecembed does not run.
    Unlike :class:`ModelNotFoundError`, looking elsewhere will not help: the
    message names the file and what is wrong with it. ``path`` is that file or
    folder when known.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        # one argument only: OSError would read two as (errno, strerror)
        super().__init__(message)


class UnknownProviderError(VecembedError, KeyError):
    """A backend name that is not in :data:`vecembed.registry.PROVIDERS`; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MissingDependencyError(VecembedError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str = "") -> None:
        self.module = module
        self.extra = extra
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"the optional dependency {module!r} is needed{what} but is not installed: "
            f"run  pip install 'vecembed[{extra}]'",
            name=module,
        )


class InvalidInputError(VecembedError, ValueError):
    """Input that cannot be embedded or written; nothing was done for the call.

    ``index`` is the position of the first offending item when there is one.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        super().__init__(message)


class InvalidVectorsError(VecembedError, ValueError):
    """A provider returned vectors that cannot be stored: not numbers, NaN or inf, or not unit norm
    although its ``info.normalized`` says they are (an all-zero row included).

    ``index`` is the row (the text's position in the embed call) of the first bad vector, ``provider``
    the provider's model name. Nothing was written or cached for the call.
    """

    def __init__(self, message: str, *, index: int | None = None, provider: str | None = None) -> None:
        self.index = index
        self.provider = provider
        super().__init__(message)


class DimensionMismatchError(VecembedError, ValueError):
    """Vectors of one size were about to meet a collection or index of another."""

    def __init__(self, message: str, *, expected: int | None = None, got: int | None = None) -> None:
        self.expected = expected
        self.got = got
        super().__init__(message)


class ModelMismatchError(VecembedError, ValueError):
    """A collection was written with another model (another vector space)."""

    def __init__(self, message: str, *, expected: str | None = None, got: str | None = None) -> None:
        self.expected = expected
        self.got = got
        super().__init__(message)


class ProviderUnavailableError(VecembedError, RuntimeError):
    """A backend, device or database cannot serve the request right now."""


class CollectionNotFoundError(VecembedError, LookupError):
    """A collection that was to be opened, not created, does not exist."""

    def __init__(self, message: str, *, db: str, collection: str, location: str) -> None:
        self.db = db
        self.collection = collection
        self.location = location
        super().__init__(message)


class ProviderNotRecordedError(InvalidInputError):
    """A collection opened without ``provider=`` records no provider to load (written before vecembed recorded
    providers, or by other code): pass ``provider=``."""


class EventLoopError(VecembedError, RuntimeError):
    """A store on a native async client (``AsyncQdrantClient``, chromadb's ``AsyncHttpClient``) called where its
    event loop cannot run the call: a sync method on that loop's own thread (it would wait for itself forever),
    a loop that stopped or closed, or a sync ``open_store`` given an async client. Raised before anything is
    sent, except for a loop that stops during a call: that call may or may not have reached the database.
    """


class IngestError(ProviderUnavailableError):
    """An ingest stopped part-way because the database (or the provider) kept failing.

    ``report`` (an :class:`~vecembed.store.IngestReport`) counts what was committed
    before the failure — it stays written. Re-running the same ingest finishes the
    job: ids are deterministic and stored documents are skipped, so nothing is lost
    and nothing is duplicated.
    """

    def __init__(self, message: str, *, report: Any, total: int | None) -> None:
        self.report = report
        self.total = total
        super().__init__(message)

    @property
    def committed(self) -> int:
        """Documents stored when the ingest stopped (written by this call plus already stored)."""
        return int(self.report.written + self.report.skipped)


class QueueFullError(ProviderUnavailableError):
    """The server's batching queue holds as many texts as it may; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ShuttingDownError(ProviderUnavailableError):
    """The server's batcher was closed: no new work is taken."""


class UnsupportedError(VecembedError, NotImplementedError):
    """The store (or provider) cannot do what was asked (e.g. sparse or hybrid search); the message names
    the ones that can."""


class CliError(VecembedError, ValueError):
    """A command-line mistake the user can fix; the message says how."""


class ApiError(VecembedError, RuntimeError):
    """An HTTP error of ``vecembed serve``, answered in OpenAI's error format; ``headers`` go with the response
    (Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI writes it."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
