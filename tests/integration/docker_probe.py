"""One Docker probe for every testcontainers fixture (Chroma and Qdrant): ping once, say why not."""

from __future__ import annotations

import functools


@functools.cache
def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers a ping; otherwise why not (probed once per session)."""
    try:
        import docker
    except ImportError:
        return "the docker SDK is not installed (pip install 'vecembed[dev]')"
    try:
        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__}: {str(exc)[:160]})"
    return None
