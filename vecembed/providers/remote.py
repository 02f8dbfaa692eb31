"""RemoteProvider: the embedding model runs in a ``vecembed serve`` process (or any OpenAI-compatible server).

Against a vecembed server the provider takes its whole :class:`~vecembed.types.ModelInfo`
from ``GET /info`` — the fingerprint included — so a collection written with the
local provider accepts the remote one, and refuses a server that runs another
model, exactly as the Chroma and Qdrant guards do locally. Queries go with
``input_type: "query"`` so the server applies the model's query prompt.

Against a plain OpenAI-compatible endpoint (no ``/info``), name the ``model``
and its ``dimension``; the fingerprint is then derived from what is known —
``make_fingerprint(weights_id="openai-compatible:<model>", pooling="none",
normalized=<normalized>, dimension=<dimension>)`` with the prefix ``ve1-remote-``:
two endpoints serving the same model name share it, and it never equals the
fingerprint of a model vecembed runs itself (whose weights it cannot see there).

Requests are batched to the server's limits (``max_inputs`` and
``max_request_bytes`` from ``/info``), sent as base64 float32 (exact, a third
of the JSON size), and retried with exponential backoff on connection errors,
timeouts, 429 (honouring Retry-After), 502, 503 and 504.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from vecembed._deps import require
from vecembed.errors import (
    DimensionMismatchError,
    InvalidInputError,
    ProviderUnavailableError,
    TransientServerError,
)
from vecembed.health import PROBE_TEXTS, probe_provider
from vecembed.pipeline import validate_texts
from vecembed.providers.base import ProviderBase
from vecembed.retry import call_with_retry
from vecembed.types import Embeddings, EmbedResult, HealthReport, ModelInfo, make_fingerprint
from vecembed.vectors import check_embeddings

__all__ = ["RemoteProvider"]

#: Where the API key comes from when ``api_key`` is not given (the first of a comma-separated list).
API_KEY_ENV = "VECEMBED_API_KEY"
#: Statuses worth another try: overloaded, restarting, or a proxy in between that could not reach it.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class RemoteProvider(ProviderBase):
    """Embeds over HTTP with a vecembed server (``vecembed serve``) or an OpenAI-compatible endpoint.

    ``url``: the server (``http://host:8000`` or ``.../v1``); ``api_key``: bearer key
    (default ``$VECEMBED_API_KEY``); ``model``, ``dimension``: required for a server
    without ``/info``, checked against ``/info`` otherwise; ``normalized``,
    ``max_tokens``, ``query_prompt``: what is known of a plain endpoint's model
    (``query_prompt`` is prepended to queries on the client there); ``timeout``
    (seconds per request), ``retries``, ``backoff`` (first wait, doubled each try);
    ``batch_size``: at most this many texts a request (default: the server's limit);
    ``transport``: an ``httpx`` transport (tests).
    """

    backend = "remote"

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        dimension: int | None = None,
        normalized: bool = True,
        max_tokens: int = 512,
        query_prompt: str = "",
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.25,
        batch_size: int | None = None,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"url must be an http:// or https:// address, got {url!r}")
        if dimension is not None and (not isinstance(dimension, int) or isinstance(dimension, bool) or dimension <= 0):
            raise InvalidInputError(f"dimension must be a positive int, got {dimension!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be an int >= 0, got {retries!r}")
        httpx = require("httpx", "remote", "the remote backend")
        base = url.rstrip("/")
        self.root = base[: -len("/v1")] if base.endswith("/v1") else base
        self.api_url = f"{self.root}/v1"
        self._retries = retries
        self._backoff = backoff
        self._query_prompt = query_prompt
        if api_key is None:
            api_key = next((k.strip() for k in os.environ.get(API_KEY_ENV, "").split(",") if k.strip()), None)
        sent = {"User-Agent": "vecembed-remote", **dict(headers or {})}
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._client = httpx.Client(headers=sent, timeout=timeout, transport=transport)
        try:
            served = self._get_info()
            self.served_by_vecembed = served is not None
            if served is not None:
                self._info, limits = self._info_from_server(served, model, dimension)
            else:
                self._info, limits = self._info_from_user(model, dimension, normalized, max_tokens, query_prompt), {}
        except BaseException:
            self._client.close()
            raise
        self.limits: dict[str, Any] = dict(limits)
        max_inputs = int(limits.get("max_inputs", 2048))
        self._batch_size = min(batch_size or max_inputs, max_inputs)
        # leave room for the JSON around the texts and for escapes
        self._max_bytes = int(int(limits.get("max_request_bytes", 8 * 1024 * 1024)) * 0.8)

    # -- identity ----------------------------------------------------------------------------------

    def _get_info(self) -> dict[str, Any] | None:
        response = self._request("GET", f"{self.root}/info")
        if response.status_code == 404:
            return None  # an OpenAI-compatible server that is not vecembed
        self._raise_for(response)
        try:
            body = response.json()
        except ValueError:  # not JSON (a page of another server at that path): not a vecembed server
            return None
        if not isinstance(body, dict) or not isinstance(body.get("model"), dict):
            return None
        return body

    def _info_from_server(
        self, served: dict[str, Any], model: str | None, dimension: int | None
    ) -> tuple[ModelInfo, Mapping[str, Any]]:
        raw = dict(served["model"])
        known = set(ModelInfo.__dataclass_fields__)
        fields = {k: v for k, v in raw.items() if k in known}
        served_names = set(served.get("served_names") or [raw.get("name")])
        if model is not None and model not in served_names:
            raise ProviderUnavailableError(
                f"the server at {self.root} serves {raw.get('name')!r}, not {model!r}; "
                "point url at the server of that model or drop model="
            )
        if dimension is not None and dimension != raw.get("dimension"):
            raise DimensionMismatchError(
                f"the server at {self.root} serves {raw.get('dimension')}-d vectors, not {dimension}-d",
                expected=dimension, got=raw.get("dimension"),
            )
        fields["backend"] = "remote"
        fields["extra"] = {"url": self.root, "served_backend": raw.get("backend"),
                           "served_extra": dict(raw.get("extra") or {})}
        return ModelInfo(**fields), dict(served.get("limits") or {})

    def _info_from_user(
        self, model: str | None, dimension: int | None, normalized: bool, max_tokens: int, query_prompt: str
    ) -> ModelInfo:
        if not model or dimension is None:
            raise InvalidInputError(
                f"{self.root} has no /info (not a vecembed server): pass model= and dimension= for an "
                "OpenAI-compatible endpoint, e.g. load_provider('remote', url=..., model='text-embedding-3-small', "
                "dimension=1536)"
            )
        fingerprint = make_fingerprint(
            weights_id=f"openai-compatible:{model}",
            pooling="none",
            normalized=normalized,
            dimension=dimension,
            extra={"query_prompt": query_prompt},
        ).replace("ve1-", "ve1-remote-")
        return ModelInfo(
            name=model, dimension=dimension, max_tokens=max_tokens, pooling="none", normalized=normalized,
            backend="remote", device="remote", fingerprint=fingerprint, query_prompt=query_prompt,
            extra={"url": self.root, "served_backend": None},
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def health_check(self) -> HealthReport:
        """The shared probe; against a plain OpenAI-compatible endpoint without the empty text, which those refuse."""
        if not self.closed and self._info.extra.get("served_backend") is None:
            return probe_provider(self, PROBE_TEXTS[:1])
        return super().health_check()

    # -- HTTP --------------------------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        """One HTTP call, retried on transient failures; the last failure becomes ProviderUnavailableError."""
        httpx = self._httpx
        waits: list[float] = []

        def once() -> Any:
            response = self._client.request(method, url, **kwargs)
            if response.status_code in RETRY_STATUSES:
                header = response.headers.get("retry-after", "")
                raise TransientServerError(
                    f"{method} {url} answered {response.status_code}: {_message_of(response)}",
                    retry_after=float(header) if header.replace(".", "", 1).isdigit() else 0.0,
                )
            return response

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, TransientServerError | httpx.TransportError)

        def on_retry(exc: BaseException) -> None:
            waits.append(min(exc.retry_after, 30.0) if isinstance(exc, TransientServerError) else 0.0)

        def sleep(seconds: float) -> None:
            time.sleep(max(seconds, waits[-1] if waits else 0.0))

        try:
            return call_with_retry(once, retries=self._retries, backoff=self._backoff, is_transient=transient,
                                   on_retry=on_retry, sleep=sleep)
        except TransientServerError as exc:
            raise ProviderUnavailableError(f"{exc} (after {self._retries} retries)") from None
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(
                f"cannot reach the embedding server at {self.root}: {type(exc).__name__}: {exc} "
                f"(after {self._retries} retries); is `vecembed serve` running there?"
            ) from None

    def _raise_for(self, response: Any) -> None:
        status = response.status_code
        if status < 400:
            return
        message = f"the embedding server at {self.root} answered {status}: {_message_of(response)}"
        if status == 401:
            raise ProviderUnavailableError(f"{message} — pass api_key= or set ${API_KEY_ENV}")
        if status in (400, 413, 422):
            raise InvalidInputError(message)
        raise ProviderUnavailableError(message)

    def _batches(self, texts: list[str]) -> Iterator[tuple[int, int]]:
        start, size, count = 0, 0, 0
        for i, text in enumerate(texts):
            # UTF-8 bytes plus JSON quoting; a text alone over the limit still goes (the server says 413)
            cost = len(text.encode("utf-8")) + 8
            if count and (count >= self._batch_size or size + cost > self._max_bytes):
                yield start, i
                start, size, count = i, 0, 0
            size += cost
            count += 1
        if count:
            yield start, len(texts)

    def _embed(self, texts: Sequence[str], kind: str, what: str) -> EmbedResult:
        self._check_open()
        items = validate_texts(texts, what=what)
        dim = self._info.dimension
        out = np.empty((len(items), dim), dtype=np.float32)
        tokens = 0
        payload: dict[str, Any] = {"model": self._info.name, "encoding_format": "base64"}
        if self.served_by_vecembed:
            payload["input_type"] = kind
        elif kind == "query" and self._query_prompt:
            items = [self._query_prompt + t for t in items]
        batches = 0
        for start, stop in self._batches(items):
            response = self._request("POST", f"{self.api_url}/embeddings", json={**payload, "input": items[start:stop]})
            self._raise_for(response)
            body = self._json(response, "POST /v1/embeddings")
            self._read_rows(body, out, start, stop)
            usage = body.get("usage")
            prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
            tokens += prompt_tokens if isinstance(prompt_tokens, int) and not isinstance(prompt_tokens, bool) else 0
            batches += 1
        # The server's vectors are checked like any provider's: finite, and unit norm when the model says so.
        out = check_embeddings(
            out, expected_rows=len(items), dimension=dim, normalized=self._info.normalized,
            where=f"the embedding server at {self.root} ({self._info.name})", outcome="nothing was returned",
            provider=self._info.name,
        )
        self.stats.add(texts=len(items), tokens=tokens, batches=batches)
        return EmbedResult(out, tokens=tokens, truncated=None)

    def _json(self, response: Any, what: str) -> dict[str, Any]:
        """The JSON object of a response, or ProviderUnavailableError saying what came instead."""
        try:
            body = response.json()
        except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
            snippet = (response.text or "").strip()[:120] or "(an empty body)"
            raise ProviderUnavailableError(
                f"the embedding server at {self.root} answered {what} with a body that is not JSON: {snippet!r}; "
                "is url a vecembed or OpenAI-compatible embedding server?"
            ) from None
        if not isinstance(body, dict):
            raise ProviderUnavailableError(
                f"the embedding server at {self.root} answered {what} with JSON {type(body).__name__}, not an object"
            )
        return body

    def _read_rows(self, body: dict[str, Any], out: Embeddings, start: int, stop: int) -> None:
        """Put one response's vectors into ``out[start:stop]`` by their ``index``: each of 0..n-1 exactly once."""
        data = body.get("data")
        n = stop - start
        server = f"the embedding server at {self.root}"
        if not isinstance(data, list) or len(data) != n:
            got = f"{len(data)} vectors" if isinstance(data, list) else f"no 'data' list ({type(data).__name__})"
            raise ProviderUnavailableError(f"{server} returned {got} for {n} inputs")
        seen = np.zeros(n, dtype=bool)
        dim = self._info.dimension
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
                raise ProviderUnavailableError(
                    f"{server} returned a vector with index {index!r}; a response to {n} inputs has each index "
                    f"0..{n - 1} once (nothing was returned)"
                )
            if seen[index]:
                # Two rows for one index mean another row is missing: the vectors would be paired with the
                # wrong texts.
                raise ProviderUnavailableError(
                    f"{server} returned index {index} twice in one response of {n} vectors; each index must come "
                    "once (nothing was returned)"
                )
            seen[index] = True
            vector = _decode(item.get("embedding"), f"{server} (the vector of text {start + index})")
            if vector.shape != (dim,):
                raise DimensionMismatchError(
                    f"{server} returned a {vector.shape[0]}-d vector for text {start + index}; "
                    f"{self._info.name} is {dim}-d",
                    expected=dim, got=int(vector.shape[0]),
                )
            out[start + index] = vector

    # -- the protocol --------------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Document vectors from the server, float32 ``(n, dimension)`` in input order."""
        return self._embed(texts, "document", "documents").vectors

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """:meth:`embed_documents` with the tokens the server counted (truncation is not reported over HTTP)."""
        return self._embed(texts, "document", "documents")

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        """Query vectors (the server applies the model's query prompt)."""
        return self._embed(texts, "query", "queries").vectors

    def close(self) -> None:
        """Close the HTTP connections. Safe to call twice."""
        if not self._closed:
            self._client.close()
        super().close()


def _message_of(response: Any) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except Exception:
        return (response.text or "").strip()[:300] or "(no body)"


def _decode(embedding: Any, where: str) -> Embeddings:
    """One embedding of a response, base64 float32 or a list of numbers, as a 1-D float32 array."""
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        except (binascii.Error, ValueError) as exc:
            raise ProviderUnavailableError(
                f"{where} is not base64 of little-endian float32 ({exc}); nothing was returned"
            ) from None
    if isinstance(embedding, list):
        try:
            vector = np.asarray(embedding, dtype=np.float32)
        except (TypeError, ValueError) as exc:  # strings, nested lists, objects
            raise ProviderUnavailableError(f"{where} is not a list of numbers ({exc}); nothing was returned") from None
        if vector.ndim == 1:
            return vector
        raise ProviderUnavailableError(f"{where} is a nested list of shape {vector.shape}, not a list of numbers")
    raise ProviderUnavailableError(f"{where} is a {type(embedding).__name__}, not base64 or a list of numbers")
