"""``vecembed serve``: the OpenAI-compatible embeddings server (see :mod:`vecembed.server`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from vecembed.cli._common import CliError, add_provider_options, echo, open_provider, positive_int

__all__ = ["cmd_serve", "register"]


def _non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def register(commands: Any) -> None:
    """Add ``serve`` to the CLI."""
    from vecembed.server.app import API_KEY_ENV, ServerSettings

    defaults = ServerSettings()
    serve = commands.add_parser(
        "serve",
        help="serve the model over HTTP: OpenAI-compatible /v1/embeddings, /health, /info, /metrics",
        description="An OpenAI-compatible embeddings server with dynamic batching. Needs "
        "pip install 'vecembed[server]'. SIGTERM drains in-flight requests, then exits.",
    )
    add_provider_options(serve)
    if "--quantize" not in serve._option_string_actions:  # the shared options may already carry it
        serve.add_argument("--quantize", choices=["int8"], default=None,
                           help="int8 dynamic quantisation (onnx backend); another vector space")
    net = serve.add_argument_group("server")
    net.add_argument("--host", default=defaults.host, help="address to listen on (default 127.0.0.1: this machine "
                     "only; 0.0.0.0 for every interface)")
    net.add_argument("--port", "-p", type=int, default=defaults.port, help=f"port (default {defaults.port})")
    net.add_argument("--api-key", action="append", default=None, metavar="KEY",
                     help=f"accepted bearer key, repeatable (default: ${API_KEY_ENV}, comma-separated; "
                     "none = no authentication)")
    net.add_argument("--alias", action="append", default=None, metavar="NAME",
                     help="another model name clients may send (e.g. text-embedding-3-small), repeatable")
    net.add_argument("--log-level", default=defaults.log_level,
                     choices=["critical", "error", "warning", "info", "debug"], help="uvicorn's log level")
    limits = serve.add_argument_group("limits")
    limits.add_argument("--max-inputs", type=positive_int, default=defaults.max_inputs,
                        help=f"inputs per request, 413 beyond (default {defaults.max_inputs})")
    limits.add_argument("--max-request-bytes", type=positive_int, default=defaults.max_request_bytes,
                        help=f"request body size, 413 beyond (default {defaults.max_request_bytes})")
    limits.add_argument("--max-batch-texts", type=positive_int, default=defaults.max_batch_texts,
                        help=f"texts merged into one call (default {defaults.max_batch_texts})")
    limits.add_argument("--max-batch-tokens", type=positive_int, default=defaults.max_batch_tokens,
                        help=f"estimated tokens merged into one call (default {defaults.max_batch_tokens})")
    limits.add_argument("--max-wait-ms", type=_non_negative_float, default=defaults.max_wait_ms,
                        help=f"how long a busy server waits to fill a batch (default {defaults.max_wait_ms})")
    limits.add_argument("--max-queue", type=positive_int, default=defaults.max_queue_texts,
                        help=f"texts waiting before requests get 429 (default {defaults.max_queue_texts})")
    limits.add_argument("--health-probe-interval", type=_non_negative_float, default=defaults.health_probe_interval,
                        help="seconds between two model probes of /health?deep=1 (default "
                        f"{defaults.health_probe_interval:g}); plain /health never runs the model")
    limits.add_argument("--health-rate-limit", type=_non_negative_float, default=defaults.health_rate_limit,
                        help="answers per second /health and /metrics give callers without a key; more wait "
                        f"their turn, then 429 (default {defaults.health_rate_limit:g}; 0 = no limit)")
    limits.add_argument("--drain-timeout", type=_non_negative_float, default=defaults.drain_timeout,
                        help=f"seconds SIGTERM waits for in-flight requests (default {defaults.drain_timeout:g})")
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the model in the background, listen at once (503 until ready), serve until SIGTERM."""
    from vecembed.errors import InvalidInputError
    from vecembed.server.app import API_KEY_ENV, EmbeddingServer, ServerSettings, api_keys_from_env, run_server

    keys = [k.strip() for k in args.api_key or []]
    if any(not k for k in keys):
        raise CliError("--api-key must not be empty")
    if not keys:
        # a variable that holds something yet no key (" , ") is refused like --api-key "": serving
        # without authentication must be asked for by leaving the variable unset or empty
        try:
            keys = list(api_keys_from_env(os.environ.get(API_KEY_ENV)))
        except InvalidInputError as exc:
            raise CliError(str(exc)) from None
    if args.quantize:
        args.opt = [*(args.opt or []), f"quantize={args.quantize}"]
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        api_keys=tuple(keys),
        aliases=tuple(args.alias or ()),
        max_inputs=args.max_inputs,
        max_request_bytes=args.max_request_bytes,
        max_batch_texts=args.max_batch_texts,
        max_batch_tokens=args.max_batch_tokens,
        max_wait_ms=args.max_wait_ms,
        max_queue_texts=args.max_queue,
        drain_timeout=args.drain_timeout,
        health_probe_interval=args.health_probe_interval,
        health_rate_limit=args.health_rate_limit,
        log_level=args.log_level,
    )
    # Building the server checks the [server] extra before any model is loaded.
    server = EmbeddingServer(lambda: open_provider(args), settings)

    def ready(srv: EmbeddingServer) -> None:
        if srv.provider is None:  # pragma: no cover - ready means loaded
            return
        info = srv.provider.info
        auth = f"{len(keys)} API key(s)" if keys else "no API key"
        echo(f"vecembed: serving {info.name} ({info.backend}, {info.dimension}-d, fingerprint {info.fingerprint}) "
             f"on http://{settings.host}:{settings.port}/v1 — {auth}", err=True)

    run_server(server, on_ready=ready)
    if server.load_error is not None:
        raise server.load_error
    return 0
