"""The ASGI application of ``vecembed serve`` (Starlette) and the uvicorn server that drains on SIGTERM.

Endpoints::

    POST /v1/embeddings   OpenAI's embeddings API (see vecembed.server.schema)      API key
    GET  /v1/models       the served model and its aliases                           API key
    GET  /info            ModelInfo (fingerprint included), limits, what input is taken  API key
    GET  /health          200 when the provider's health check passes, else 503      open
    GET  /metrics         Prometheus text format                                     open

States: ``starting`` (the model loads in the background; everything but /metrics
answers 503), ``ready``, ``draining`` (after SIGTERM: in-flight requests finish,
new ones get 503 so a load balancer moves on, then the process exits).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecembed._deps import require
from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.protocol import EmbeddingProvider, TokenizerProvider
from vecembed.server.batcher import DynamicBatcher, QueueFullError, ShuttingDownError
from vecembed.server.metrics import ServerMetrics
from vecembed.server.schema import ApiError, parse_embeddings_request

__all__ = ["EmbeddingServer", "ServerSettings", "run_server"]

log = logging.getLogger("vecembed.server")

#: The environment variable holding API keys (comma-separated) when ``--api-key`` is not given.
API_KEY_ENV = "VECEMBED_API_KEY"


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Where ``vecembed serve`` listens, who may call it, and its limits.

    ``api_keys``: accepted bearer keys (none: no authentication); ``aliases``: more
    model names clients may send; ``max_inputs`` / ``max_request_bytes``: per
    request (413 beyond); ``max_batch_texts``, ``max_batch_tokens``,
    ``max_wait_ms``: dynamic batching; ``max_queue_texts``: queued texts before 429;
    ``drain_timeout``: seconds SIGTERM waits for in-flight requests.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    max_inputs: int = 2048
    max_request_bytes: int = 8 * 1024 * 1024
    max_batch_texts: int = 64
    max_batch_tokens: int = 8192
    max_wait_ms: float = 2.0
    max_queue_texts: int = 4096
    drain_timeout: float = 30.0
    log_level: str = "warning"

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_request_bytes", "max_batch_texts", "max_batch_tokens", "max_queue_texts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InvalidInputError(f"ServerSettings.{name} must be a positive int, got {value!r}")
        if not 0 <= self.port <= 65535:
            raise InvalidInputError(f"ServerSettings.port must be in 0..65535, got {self.port}")
        if self.max_wait_ms < 0 or self.drain_timeout < 0:
            raise InvalidInputError("ServerSettings.max_wait_ms and drain_timeout must be >= 0")
        if any(not key for key in self.api_keys):
            raise InvalidInputError("ServerSettings.api_keys must not hold an empty key")

    def limits(self) -> dict[str, Any]:
        """The limits a client needs (what ``/info`` reports and the remote provider batches to)."""
        return {
            "max_inputs": self.max_inputs,
            "max_request_bytes": self.max_request_bytes,
            "max_batch_texts": self.max_batch_texts,
            "max_batch_tokens": self.max_batch_tokens,
            "max_queue_texts": self.max_queue_texts,
            "max_wait_ms": self.max_wait_ms,
        }


@dataclass
class _Counts:
    in_flight: int = 0
    started: float = field(default_factory=time.monotonic)


class EmbeddingServer:
    """The application state and the Starlette app (``.app``) serving one provider.

    ``provider`` is a provider, or a function that loads one: it then loads in the
    background when the app starts, and the server answers 503 until it is ready.
    ``own_provider``: close the provider when the app stops.
    """

    def __init__(
        self,
        provider: EmbeddingProvider | Callable[[], EmbeddingProvider],
        settings: ServerSettings | None = None,
        *,
        own_provider: bool = True,
    ) -> None:
        require("starlette", "server", "vecembed serve")
        self._orjson = require("orjson", "server", "vecembed serve")
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.settings = settings or ServerSettings()
        self.own_provider = own_provider
        self._factory: Callable[[], EmbeddingProvider] | None = None
        self.provider: EmbeddingProvider | None = None
        if isinstance(provider, EmbeddingProvider):
            self.provider = provider
        else:
            self._factory = provider
        self.batcher: DynamicBatcher | None = None
        self.status = "starting"
        self.load_error: BaseException | None = None
        self._counts = _Counts()
        self._keys = [key.encode() for key in self.settings.api_keys]
        self._names: set[str] = set()
        self._decode: Callable[[list[list[int]]], list[str]] | None = None
        self._vocab_size: int | None = None
        self.metrics = ServerMetrics(
            queue_depth=lambda: float(self.batcher.queued_texts if self.batcher else 0),
            in_flight=lambda: float(self._counts.in_flight),
        )
        self.app = Starlette(
            routes=[
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/info", self.info, methods=["GET"]),
                Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Embedding requests accepted and not yet answered."""
        return self._counts.in_flight

    @asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        loader = asyncio.ensure_future(self._load())
        try:
            yield
        finally:
            self.status = "draining"
            if not loader.done():
                loader.cancel()
            await asyncio.to_thread(self.shutdown)

    async def _load(self) -> None:
        try:
            if self.provider is None and self._factory is not None:
                self.provider = await asyncio.to_thread(self._factory)
            self._attach(self.provider)
        except Exception as exc:  # the server stays up and says why on /health
            self.load_error = exc
            self.status = "failed"
            # /health and every request say why; the CLI exits with this error as its one line
            log.info("vecembed serve: the model did not load: %s", exc)

    def _attach(self, provider: EmbeddingProvider | None) -> None:
        if provider is None:  # pragma: no cover - a factory that returned None
            raise ProviderUnavailableError("the provider factory returned None")
        info = provider.info
        short = info.name.rstrip("/").rsplit("/", 1)[-1]
        self._names = {info.name, short, *self.settings.aliases}
        tokenizer = provider.tokenizer if isinstance(provider, TokenizerProvider) else None
        if tokenizer is not None and hasattr(tokenizer, "decode_batch"):
            self._decode = lambda ids: list(tokenizer.decode_batch(ids, skip_special_tokens=True))
            self._vocab_size = int(tokenizer.get_vocab_size())
        s = self.settings
        self.batcher = DynamicBatcher(
            provider,
            max_batch_texts=s.max_batch_texts,
            max_batch_tokens=s.max_batch_tokens,
            max_wait=s.max_wait_ms / 1000.0,
            max_queue_texts=s.max_queue_texts,
            metrics=self.metrics,
        )
        self.status = "ready"

    def begin_drain(self) -> None:
        """Answer 503 to new requests from now on (in-flight ones finish)."""
        if self.status in ("ready", "starting"):
            self.status = "draining"

    def drained(self) -> bool:
        """No request in flight and nothing queued or running."""
        return self._counts.in_flight == 0 and (self.batcher is None or self.batcher.idle)

    def shutdown(self) -> None:
        """Finish queued work, stop the batching thread, close the provider when owned. Blocking."""
        self.status = "draining"
        if self.batcher is not None:
            self.batcher.close(timeout=self.settings.drain_timeout)
        if self.own_provider and self.provider is not None:
            self.provider.close()

    # -- helpers ----------------------------------------------------------------------------------

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        from starlette.responses import Response

        content = self._orjson.dumps(obj, option=self._orjson.OPT_SERIALIZE_NUMPY)
        return Response(content, status_code=status, headers=headers, media_type="application/json")

    def _error(self, endpoint: str, err: ApiError) -> Any:
        self.metrics.requests.inc(endpoint=endpoint, status=str(err.status))
        if err.status in (413, 429, 503):
            self.metrics.rejected.inc(reason=str(err.code or err.status))
        return self._json(err.body(), err.status, err.headers or None)

    def _check_key(self, request: Any) -> None:
        if not self._keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        # compare with every key, in constant time, so timing does not tell which prefix matched
        if not any([hmac.compare_digest(given, key) for key in self._keys]) or not given:
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           type="invalid_request_error", code="invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})

    def _provider(self) -> EmbeddingProvider:
        if self.provider is None:  # pragma: no cover - only called once _check_ready passed
            raise ApiError(503, "the server is not ready", type="server_error")
        return self.provider

    def _check_ready(self) -> None:
        if self.status == "ready":
            return
        if self.status == "failed":
            raise ApiError(503, f"the model failed to load: {self.load_error}", type="server_error",
                           code="model_load_failed")
        what = "is starting (the model is loading)" if self.status == "starting" else "is shutting down"
        raise ApiError(503, f"the server {what}; retry shortly or use another instance", type="server_error",
                       code="service_unavailable", headers={"Retry-After": "1"})

    async def _read_body(self, request: Any) -> bytes:
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request body is {declared} bytes; this server takes at most {limit}",
                           param=None, code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the request body is over {limit} bytes, the most this server takes",
                               param=None, code="request_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- endpoints --------------------------------------------------------------------------------

    async def embeddings(self, request: Any) -> Any:
        """``POST /v1/embeddings``."""
        start = time.perf_counter()
        endpoint = "/v1/embeddings"
        self._counts.in_flight += 1
        try:
            self._check_ready()
            self._check_key(request)
            raw = await self._read_body(request)
            try:
                body = self._orjson.loads(raw)
            except self._orjson.JSONDecodeError as exc:
                raise ApiError(400, f"the request body is not valid JSON: {exc}", param=None,
                               code="invalid_json") from None
            provider, batcher = self.provider, self.batcher
            if provider is None or batcher is None:  # pragma: no cover - _check_ready said ready
                raise ApiError(503, "the server is not ready", type="server_error")
            info = provider.info
            parsed = parse_embeddings_request(
                body, served_names=self._names, dimension=info.dimension, max_inputs=self.settings.max_inputs,
                decode_tokens=self._decode, vocab_size=self._vocab_size,
            )
            try:
                future = batcher.submit(parsed.texts, kind=parsed.kind)
            except QueueFullError as exc:
                raise ApiError(429, str(exc), type="rate_limit_error", code="queue_full",
                               headers={"Retry-After": str(int(np.ceil(exc.retry_after)))}) from None
            except ShuttingDownError as exc:
                raise ApiError(503, str(exc), type="server_error", code="service_unavailable",
                               headers={"Retry-After": "1"}) from None
            try:
                result = await asyncio.wrap_future(future)
            except InvalidInputError as exc:
                raise ApiError(400, str(exc), param="input") from None
            except ProviderUnavailableError as exc:
                raise ApiError(503, str(exc), type="server_error", code="service_unavailable") from None
            except Exception as exc:
                log.exception("embedding failed")
                raise ApiError(500, f"embedding failed: {type(exc).__name__}: {exc}", type="server_error",
                               param=None, code="internal_error") from None
            vectors = result.vectors
            if parsed.encoding_format == "base64":
                raw_rows = vectors.astype("<f4", copy=False)
                data = [{"object": "embedding", "index": i,
                         "embedding": base64.b64encode(raw_rows[i].tobytes()).decode("ascii")}
                        for i in range(len(raw_rows))]
            else:
                data = [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in range(len(vectors))]
            response = self._json({
                "object": "list",
                "data": data,
                "model": parsed.model or info.name,
                "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
            })
            self.metrics.requests.inc(endpoint=endpoint, status="200")
            self.metrics.request_seconds.observe(time.perf_counter() - start)
            return response
        except ApiError as err:
            return self._error(endpoint, err)
        finally:
            self._counts.in_flight -= 1

    async def models(self, request: Any) -> Any:
        """``GET /v1/models``: the served model first, then its other names."""
        try:
            self._check_ready()
            self._check_key(request)
        except ApiError as err:
            return self._error("/v1/models", err)
        primary = self._provider().info.name
        names = [primary, *sorted(self._names - {primary})]
        self.metrics.requests.inc(endpoint="/v1/models", status="200")
        return self._json({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "vecembed"} for name in names]})

    async def info(self, request: Any) -> Any:
        """``GET /info``: the model's identity (fingerprint), the limits, the names it answers to."""
        try:
            self._check_ready()
            self._check_key(request)
        except ApiError as err:
            return self._error("/info", err)
        from vecembed import __version__

        info = self._provider().info
        self.metrics.requests.inc(endpoint="/info", status="200")
        return self._json({
            "object": "vecembed.info",
            "vecembed_version": __version__,
            "model": info.to_dict(),
            "served_names": sorted(self._names),
            "limits": self.settings.limits(),
            "accepts_token_ids": self._decode is not None,
            "input_types": ["document", "query"],
        })

    async def health(self, request: Any) -> Any:
        """``GET /health``: 200 with the provider's health report when it passes, 503 otherwise."""
        if self.status != "ready" or self.batcher is None or self.provider is None:
            detail = f"the model failed to load: {self.load_error}" if self.status == "failed" else self.status
            self.metrics.requests.inc(endpoint="/health", status="503")
            return self._json({"status": self.status, "ok": False, "detail": detail}, 503)
        try:
            report = await asyncio.wrap_future(self.batcher.call(self.provider.health_check))
            body = {"status": self.status, **report.to_dict()}
            ok = bool(report.ok)
        except Exception as exc:
            body, ok = {"status": self.status, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}, False
        status = 200 if ok else 503
        self.metrics.requests.inc(endpoint="/health", status=str(status))
        return self._json(body, status)

    async def metrics_endpoint(self, request: Any) -> Any:
        """``GET /metrics`` in the Prometheus text format."""
        from starlette.responses import Response

        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- helpers for token ids ---------------------------------------------------------------------

    def served_names(self) -> set[str]:
        """The model names this server answers to (known once the model is loaded)."""
        return set(self._names)


def run_server(
    server: EmbeddingServer,
    *,
    on_ready: Callable[[EmbeddingServer], None] | None = None,
) -> None:
    """Serve ``server.app`` with uvicorn on ``server.settings.host``/``port`` until SIGTERM/SIGINT; blocking.

    The first SIGTERM (or Ctrl+C) drains: new requests get 503, in-flight ones
    finish (at most ``drain_timeout`` seconds), then the process exits with 0.
    A second signal stops at once.
    """
    uvicorn = require("uvicorn", "server", "vecembed serve")
    settings = server.settings
    config = uvicorn.Config(
        server.app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.drain_timeout)),
    )

    class DrainingServer(uvicorn.Server):  # type: ignore[misc, name-defined]
        _loop: asyncio.AbstractEventLoop | None = None
        _draining = False

        async def serve(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            watcher = asyncio.ensure_future(self._announce())
            try:
                await super().serve(sockets)
            finally:
                watcher.cancel()

        async def _announce(self) -> None:
            while server.status == "starting" or not self.started:
                await asyncio.sleep(0.02)
            if server.status == "failed":
                self.should_exit = True  # a server without a model helps no one: exit and say why
            elif on_ready is not None and server.status == "ready":
                on_ready(server)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self._draining or self._loop is None or server.status not in ("ready", "starting"):
                super().handle_exit(sig, frame)
                return
            self._draining = True
            server.begin_drain()
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain()))

        async def _drain(self) -> None:
            deadline = time.monotonic() + settings.drain_timeout
            while not server.drained() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            # a moment for the last responses to be written before the connections close
            await asyncio.sleep(0.05)
            self.should_exit = True

    DrainingServer(config).run()

