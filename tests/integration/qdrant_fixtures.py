"""Qdrant fixtures for the integration tests: local mode in memory and on disk, and a real server.

The server is ``VECEMBED_QDRANT_URL`` when set, else a ``qdrant/qdrant``
container started through testcontainers when a Docker engine answers; without
either, server tests skip and say why. Test modules import the fixtures they
use from here (kept apart from the Chroma fixtures in ``conftest.py``)::

    from qdrant_fixtures import qdrant_client, qdrant_server_url  # noqa: F401
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

from docker_probe import docker_unavailable_reason
from qdrant_client import QdrantClient

#: The server image: >= v1.16, the first release that keeps collection metadata (where the model is recorded).
QDRANT_IMAGE = os.environ.get("VECEMBED_QDRANT_IMAGE", "qdrant/qdrant:v1.16.2")

CLIENT_KINDS = ("memory", "path", "server")


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """The URL of a real Qdrant server, for the whole session; skips with the reason when there is none."""
    url = os.environ.get("VECEMBED_QDRANT_URL")
    if url:
        yield url.rstrip("/")
        return
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no Qdrant server: VECEMBED_QDRANT_URL is not set and {reason}")
    from testcontainers.qdrant import QdrantContainer

    with QdrantContainer(QDRANT_IMAGE) as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6333)
        yield f"http://{host}:{port}"


@pytest.fixture
def collection_name() -> str:
    """A fresh collection name per test, so tests sharing one server never see each other's points."""
    return f"vecembed-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=CLIENT_KINDS)
def qdrant_client(request: pytest.FixtureRequest, tmp_path: Path, collection_name: str) -> Iterator[QdrantClient]:
    """A client of each kind: in memory, on disk (``tmp_path``), and a server (skips when none)."""
    kind = request.param
    if kind == "memory":
        client = QdrantClient(":memory:")
    elif kind == "path":
        client = QdrantClient(path=str(tmp_path / "qdrant"))
    else:
        client = QdrantClient(url=request.getfixturevalue("qdrant_server_url"), timeout=30)
    try:
        yield client
    finally:
        if kind == "server" and client.collection_exists(collection_name):
            client.delete_collection(collection_name)
        client.close()
