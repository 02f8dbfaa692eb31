"""``vecembed serve``: an OpenAI-compatible embeddings server with dynamic batching and metrics.

::

    from vecembed.server import EmbeddingServer, ServerSettings, run_server

    server = EmbeddingServer(lambda: vecembed.load_provider("onnx"), ServerSettings(port=8000))
    run_server(server)          # blocking; SIGTERM drains in-flight requests

Needs ``pip install 'vecembed[server]'`` (Starlette, uvicorn, orjson); the
modules import them when a server is built, so importing this package is cheap.
Clients: any OpenAI client, or ``vecembed.load_provider("remote", url=...)``.
"""

from vecembed.server.app import API_KEY_ENV, EmbeddingServer, ServerSettings, run_server
from vecembed.server.batcher import BatchResult, DynamicBatcher, QueueFullError, ShuttingDownError
from vecembed.server.schema import ApiError

__all__ = [
    "API_KEY_ENV",
    "ApiError",
    "BatchResult",
    "DynamicBatcher",
    "EmbeddingServer",
    "QueueFullError",
    "ServerSettings",
    "ShuttingDownError",
    "run_server",
]
