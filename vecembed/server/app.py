"""The ASGI application of ``vecembed serve`` (Starlette) and the uvicorn server that drains on SIGTERM.

Endpoints::

    POST /v1/embeddings   OpenAI's embeddings API (see vecembed.server.schema)      API key
    GET  /v1/models       the served model and its aliases                           API key
    GET  /info            ModelInfo (fingerprint included), limits, what input is taken  API key
    GET  /health          liveness from state + the last probe's verdict: 200 / 503   open
    GET  /health?deep=1   runs the provider's probe (at most one per probe interval)  API key
    GET  /metrics         Prometheus text format                                     open

``/health`` without ``deep`` never touches the model: a flood of unauthenticated
health checks costs the event loop microseconds each, not a forward pass.

States: ``starting`` (the model loads in the background; everything but /metrics
answers 503), ``ready``, ``draining`` (after SIGTERM: in-flight requests finish,
new ones get 503 so a load balancer moves on, then the process exits).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from vecembed._deps import require
from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.protocol import EmbeddingProvider, TokenizerProvider
from vecembed.server.batcher import DynamicBatcher, QueueFullError, ShuttingDownError
from vecembed.server.metrics import ServerMetrics
from vecembed.server.schema import ApiError, parse_embeddings_request
from vecembed.types import HealthReport, ModelInfo

__all__ = ["EmbeddingServer", "ServerSettings", "api_keys_from_env", "public_model_info", "run_server"]

log = logging.getLogger("vecembed.server")

#: The environment variable holding API keys (comma-separated) when ``--api-key`` is not given.
API_KEY_ENV = "VECEMBED_API_KEY"

# a key is sent as "Authorization: Bearer <key>": printable ASCII, no spaces, no commas (the env list's separator)
_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")


def api_keys_from_env(raw: str | None) -> tuple[str, ...]:
    """The keys in ``$VECEMBED_API_KEY`` (comma-separated, spaces around each ignored).

    Unset or blank means no authentication (what ``${VECEMBED_API_KEY:-}`` in a
    compose file gives); a value that holds something yet parses to no key
    (``" , "``) raises :class:`InvalidInputError` instead of silently serving
    without authentication.
    """
    if raw is None or not raw.strip():
        return ()
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise InvalidInputError(
            f"${API_KEY_ENV} is set to {raw!r}, which holds no key: set it to one key or several separated "
            f"by commas, or unset it to serve without authentication"
        )
    return keys


def _safe_probe(provider: EmbeddingProvider) -> HealthReport:
    """``provider.health_check()``, which should never raise; a user's own provider that does fails the probe."""
    start = time.perf_counter()
    try:
        return provider.health_check()
    except Exception as exc:
        return HealthReport(ok=False, latency_ms=(time.perf_counter() - start) * 1000.0,
                            detail=f"health_check raised {type(exc).__name__}: {exc}", component="provider")


def _is_machine_path(value: str) -> bool:
    return PurePosixPath(value).is_absolute() or (PureWindowsPath(value).drive != ""
                                                   and PureWindowsPath(value).is_absolute())


def _strip_paths(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_paths(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_paths(v) for v in value]
    if isinstance(value, str) and value and (key == "path" or _is_machine_path(value)):
        name = PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name
        return name or "."
    return value


def public_model_info(info: ModelInfo) -> dict[str, Any]:
    """``info.to_dict()`` as ``/info`` shows it: file-system paths reduced to their last part.

    Where the model lies on the server's disk (``/home/<user>/...``) tells a key
    holder about the machine and nothing about the vector space: the
    fingerprint, the name and the source stay; ``extra["path"]`` becomes the
    folder's or the file's own name.
    """
    shown = info.to_dict()
    shown["extra"] = _strip_paths(shown.get("extra") or {})
    if _is_machine_path(shown["name"]):
        shown["name"] = _strip_paths(shown["name"], "path")
    return shown


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Where ``vecembed serve`` listens, who may call it, and its limits.

    ``api_keys``: accepted bearer keys (none: no authentication); ``aliases``: more
    model names clients may send; ``max_inputs`` / ``max_request_bytes``: per
    request (413 beyond); ``max_batch_texts``, ``max_batch_tokens``,
    ``max_wait_ms``: dynamic batching; ``max_queue_texts``: queued texts before 429;
    ``drain_timeout``: seconds SIGTERM waits for in-flight requests;
    ``health_probe_interval``: seconds between two probes of ``/health?deep=1``
    (a deep check within that answers the last probe's verdict);
    ``health_rate_limit``: answers per second that ``/health`` and ``/metrics`` give
    callers without a key (more wait their turn, up to 1 s, then 429; 0: no limit).
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
    health_probe_interval: float = 10.0
    health_rate_limit: float = 50.0
    log_level: str = "warning"

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_request_bytes", "max_batch_texts", "max_batch_tokens", "max_queue_texts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InvalidInputError(f"ServerSettings.{name} must be a positive int, got {value!r}")
        if not 0 <= self.port <= 65535:
            raise InvalidInputError(f"ServerSettings.port must be in 0..65535, got {self.port}")
        if min(self.max_wait_ms, self.drain_timeout, self.health_probe_interval, self.health_rate_limit) < 0:
            raise InvalidInputError("ServerSettings.max_wait_ms, drain_timeout, health_probe_interval and "
                                    "health_rate_limit must be >= 0")
        if isinstance(self.api_keys, str):
            raise InvalidInputError("ServerSettings.api_keys must be a tuple of keys, not one string")
        for i, key in enumerate(self.api_keys):
            if not key:
                raise InvalidInputError(f"ServerSettings.api_keys[{i}] is an empty key")
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise InvalidInputError(
                    f"ServerSettings.api_keys[{i}] must be printable ASCII without spaces or commas "
                    "(it is sent as 'Authorization: Bearer <key>')")

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


class _OpenLimiter:
    """A token bucket for what anyone may call (``/health``, ``/metrics`` without a key), on the event loop only.

    A caller over the rate waits for its turn (at most ``max_wait`` seconds, else a 429):
    a client flooding in a loop is slowed to the rate instead of taking the event loop
    from the authorised requests; a probe every few seconds never waits.
    """

    def __init__(self, rate: float, *, max_wait: float = 1.0) -> None:
        self.rate = rate
        self.burst = max(10.0, rate)
        self.max_wait = max_wait
        self._tokens = self.burst
        self._at = time.monotonic()

    async def admit(self) -> float | None:
        """None once admitted (after waiting for its turn), else the seconds after which to retry."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate) - 1.0
        self._at = now
        if self._tokens >= 0:
            return None
        wait = -self._tokens / self.rate  # tokens below zero are the turns promised to the callers waiting
        if wait > self.max_wait:
            self._tokens += 1.0
            return wait
        await asyncio.sleep(wait)
        return None


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
        # what /health answers from: the last probe (at start, then deep checks), when it ran, the one running,
        # and the last embedding call's failure (cleared by the next success)
        self._probe: HealthReport | None = None
        self._probe_at = 0.0
        self._probing: asyncio.Future[HealthReport] | None = None
        self._call_failure: str | None = None
        self._reprobe: asyncio.Task[None] | None = None
        self._open_limiter = _OpenLimiter(self.settings.health_rate_limit)
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
            if self._reprobe is not None:
                self._reprobe.cancel()
            await asyncio.to_thread(self.shutdown)

    async def _load(self) -> None:
        try:
            if self.provider is None and self._factory is not None:
                self.provider = await asyncio.to_thread(self._factory)
            provider = self.provider
            if provider is not None:
                # the one probe /health starts from, before any request can reach the provider
                self._set_probe(await asyncio.to_thread(_safe_probe, provider))
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

    def _has_key(self, request: Any) -> bool:
        """Whether the request carries one of the server's keys (False when the server has none)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        # compare with every key, in constant time, so timing does not tell which prefix matched
        return bool(given) and any([hmac.compare_digest(given, key) for key in self._keys])

    async def _limit_open(self, request: Any, endpoint: str) -> Any:
        """None when the caller holds a key or its turn came; else the 429 to answer."""
        if self._keys and self._has_key(request):
            return None
        retry = await self._open_limiter.admit()
        if retry is None:
            return None
        return self._error(endpoint, ApiError(
            429, f"too many {endpoint} requests without an API key (at most {self.settings.health_rate_limit:g}/s)",
            type="rate_limit_error", param=None, code="rate_limited",
            headers={"Retry-After": str(max(1, int(np.ceil(retry))))}))

    def _check_key(self, request: Any) -> None:
        if not self._keys:
            return
        if not self._has_key(request):
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
                self._failed_call(exc)
                raise ApiError(503, str(exc), type="server_error", code="service_unavailable") from None
            except Exception as exc:
                log.exception("embedding failed")
                self._failed_call(exc)
                raise ApiError(500, f"embedding failed: {type(exc).__name__}: {exc}", type="server_error",
                               param=None, code="internal_error") from None
            self._call_failure = None
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
        except Exception as exc:  # a bug of ours still answers in the OpenAI error shape, never a bare 500 page
            log.exception("the embeddings endpoint failed")
            return self._error(endpoint, ApiError(500, f"internal error: {type(exc).__name__}", type="server_error",
                                                  param=None, code="internal_error"))
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
            "model": public_model_info(info),
            "served_names": sorted(self._names),
            "limits": self.settings.limits(),
            "accepts_token_ids": self._decode is not None,
            "input_types": ["document", "query"],
        })

    def _set_probe(self, report: HealthReport) -> None:
        self._probe, self._probe_at = report, time.monotonic()
        if report.ok:
            self._call_failure = None
        else:
            self._watch()

    def _failed_call(self, exc: BaseException) -> None:
        self._call_failure = f"{type(exc).__name__}: {exc}"
        self._watch()

    def _watch(self) -> None:
        """While /health says 503, probe again every ``health_probe_interval`` (at least 0.5 s) until it passes.

        The server's own timer, not a caller, decides when the model runs; without it a
        load balancer that stopped sending traffic on a 503 would never see the server recover.
        """
        if self._reprobe is not None and not self._reprobe.done():
            return
        try:
            self._reprobe = asyncio.get_running_loop().create_task(self._reprobe_until_ok())
        except RuntimeError:  # no loop running (the probe at start, in its thread): the first request's turn
            self._reprobe = None

    async def _reprobe_until_ok(self) -> None:
        while self.status in ("starting", "ready"):
            await asyncio.sleep(max(self.settings.health_probe_interval, 0.5))
            provider, batcher = self.provider, self.batcher
            if provider is None or batcher is None or batcher.closed or getattr(provider, "closed", False):
                return
            try:
                report = await asyncio.wrap_future(batcher.call(functools.partial(_safe_probe, provider)))
            except Exception:  # the batcher shut down: nothing left to watch
                return
            self._probe, self._probe_at = report, time.monotonic()
            if report.ok:
                self._call_failure = None
                return

    def _liveness(self) -> tuple[bool, str]:
        """The verdict from state alone: loaded, not closed, the last probe and the last call passed."""
        provider = self.provider
        if self.status != "ready" or self.batcher is None or provider is None:
            return False, f"the model failed to load: {self.load_error}" if self.status == "failed" else self.status
        if getattr(provider, "closed", False):
            return False, "provider is closed"
        if self._call_failure is not None:
            return False, f"the last embedding call failed: {self._call_failure}"
        if self._probe is not None and not self._probe.ok:
            return False, self._probe.detail
        return True, self._probe.detail if self._probe is not None else "ready"

    async def _deep_probe(self) -> tuple[HealthReport, bool]:
        """The provider's probe on its own thread, at most once per ``health_probe_interval``: (report, cached)."""
        if self._probing is not None:  # one probe runs: every deep check waiting now shares it
            return await asyncio.shield(self._probing), True
        fresh = time.monotonic() - self._probe_at < self.settings.health_probe_interval
        if self._probe is not None and fresh:
            return self._probe, True
        provider, batcher = self.provider, self.batcher
        if provider is None or batcher is None:  # pragma: no cover - _liveness said ready
            raise ProviderUnavailableError("the server is not ready")
        self._probing = asyncio.wrap_future(batcher.call(lambda: _safe_probe(provider)))
        try:
            report: HealthReport = await asyncio.shield(self._probing)
        finally:
            self._probing = None
        self._set_probe(report)
        return report, False

    async def health(self, request: Any) -> Any:
        """``GET /health``: liveness from state (200 / 503), never a forward pass; ``?deep=1`` probes the model.

        The deep probe needs the API key (when the server has keys) and runs at most
        once per ``health_probe_interval`` seconds; checks in between get the last
        probe's report (``"cached": true``), so no caller can make the model work.
        Callers without a key get ``health_rate_limit`` answers a second (see :class:`_OpenLimiter`).
        """
        endpoint = "/health"
        limited = await self._limit_open(request, endpoint)
        if limited is not None:
            return limited
        deep = request.query_params.get("deep", "").lower() in ("1", "true", "yes")
        ok, detail = self._liveness()
        body: dict[str, Any] = {"status": self.status, "ok": ok, "detail": detail, "deep": False}
        if deep:
            try:
                self._check_key(request)
            except ApiError as err:
                return self._error(endpoint, err)
            if self.status == "ready":
                try:
                    report, cached = await self._deep_probe()
                    ok, detail = self._liveness()
                    body = {"status": self.status, **report.to_dict(), "deep": True, "cached": cached}
                    body["ok"] = ok = ok and report.ok
                except Exception as exc:
                    ok = False
                    body = {"status": self.status, "ok": False, "detail": f"{type(exc).__name__}: {exc}",
                            "deep": True}
        elif self._probe is not None and self.status == "ready":
            body["last_probe"] = {**self._probe.to_dict(),
                                  "age_s": round(time.monotonic() - self._probe_at, 1)}
        status = 200 if ok else 503
        self.metrics.requests.inc(endpoint=endpoint, status=str(status))
        return self._json(body, status)

    async def metrics_endpoint(self, request: Any) -> Any:
        """``GET /metrics`` in the Prometheus text format (rate-limited like ``/health`` for callers without a key)."""
        from starlette.responses import Response

        limited = await self._limit_open(request, "/metrics")
        if limited is not None:
            return limited

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

