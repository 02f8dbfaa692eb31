"""Fixtures for the integration tests: real database servers.

Chroma (``chroma_*`` fixtures):

- ``chroma_server``: a real Chroma server started from the pip package
  (``chroma run --path <tmp> --host 127.0.0.1 --port <free>``) for the test
  session, stopped by its PID with SIGTERM. Skips only when the ``chroma``
  binary is missing; a server that does not come up fails the tests with its log.
- ``chroma_endpoint``: parametrised over that local server, the server at
  ``VECEMBED_CHROMA_URL`` (skips when unset) and a testcontainers
  ``chromadb/chroma`` container (skips when no Docker engine answers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from docker_probe import docker_unavailable_reason

# -- Chroma --------------------------------------------------------------------------------------

#: The chromadb/chroma image matching the chromadb client vecembed is tested with (as in docker/compose.yaml).
CHROMA_IMAGE = "chromadb/chroma:1.5.9"
CHROMA_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ChromaEndpoint:
    """Where a Chroma server answers."""

    host: str
    port: int
    kind: str  # "local-server", "env-url" or "testcontainers"
    ssl: bool = False
    pid: int | None = None  # the server process, when this session started it

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    def client(self) -> Any:
        import chromadb

        return chromadb.HttpClient(host=self.host, port=self.port, ssl=self.ssl)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def chroma_heartbeat(url: str, timeout: float = 1.0) -> bool:
    """Whether a Chroma server answers ``GET /api/v2/heartbeat`` at ``url``."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _chroma_binary() -> str | None:
    beside = Path(sys.executable).with_name("chroma")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("chroma")


@contextlib.contextmanager
def run_chroma_server(root: Path) -> Iterator[ChromaEndpoint]:
    """Start ``chroma run`` with its data under ``root``; stop it by its PID (SIGTERM) on exit.

    Skips when the ``chroma`` binary is missing; fails with the server log when it does not come up.
    """
    binary = _chroma_binary()
    if binary is None:
        pytest.skip("the `chroma` binary (from `pip install 'vecembed[chroma]'`) is not installed")
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc: subprocess.Popen[bytes] | None = None
    endpoint: ChromaEndpoint | None = None
    with open(log_path, "wb") as log:
        # A port found free can be taken before the server binds it; `chroma run` then prints
        # "Address ... is not available" and exits 0, so watch the process, not the exit code.
        for _attempt in range(3):
            port = _free_port()
            proc = subprocess.Popen(
                [binary, "run", "--path", str(root / "data"), "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                env=env,
            )
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + CHROMA_START_TIMEOUT_S
            while time.monotonic() < deadline and proc.poll() is None:
                if chroma_heartbeat(url, timeout=0.5):
                    # Someone else's server on this port would answer too, while ours exits: make sure
                    # the process that answered is still ours.
                    time.sleep(0.2)
                    if proc.poll() is None:
                        endpoint = ChromaEndpoint("127.0.0.1", port, "local-server", pid=proc.pid)
                    break
                time.sleep(0.1)
            if endpoint is not None:
                break
            _stop(proc)
    if endpoint is None or proc is None:
        pytest.fail(f"`chroma run` did not answer its heartbeat; log:\n{log_path.read_text(errors='replace')[-3000:]}")
    try:
        yield endpoint
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaEndpoint]:
    """A real ``chroma run`` server on 127.0.0.1 for the whole session."""
    with run_chroma_server(tmp_path_factory.mktemp("chroma-server")) as endpoint:
        yield endpoint


@pytest.fixture
def chroma_server_factory(tmp_path: Path) -> Any:
    """``with chroma_server_factory() as endpoint:`` — a private, short-lived server (for stop/restart tests).

    ``chroma_server_factory(root)`` starts one on the data under ``root`` (a restart of an earlier one).
    """
    counter = iter(range(1000))
    return lambda root=None: run_chroma_server(root or tmp_path / f"chroma-{next(counter)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def chroma_container() -> Iterator[ChromaEndpoint]:
    """A ``chromadb/chroma`` container through testcontainers; skips when no Docker engine answers."""
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"testcontainers {CHROMA_IMAGE}: {reason}")
    from testcontainers.community.chroma import ChromaContainer

    with ChromaContainer(image=CHROMA_IMAGE) as container:
        config = container.get_config()
        yield ChromaEndpoint(str(config["host"]), int(config["port"]), "testcontainers")


@pytest.fixture(scope="session")
def chroma_env_server() -> ChromaEndpoint:
    """The Chroma server at ``VECEMBED_CHROMA_URL`` (e.g. from docker/compose.yaml); skips when unset."""
    url = os.environ.get("VECEMBED_CHROMA_URL", "").strip()
    if not url:
        pytest.skip("VECEMBED_CHROMA_URL is not set (e.g. http://127.0.0.1:8000 after `docker compose up`)")
    parsed = urlparse(url if "://" in url else f"http://{url}")
    ssl = parsed.scheme == "https"
    endpoint = ChromaEndpoint(parsed.hostname or "127.0.0.1", parsed.port or (443 if ssl else 8000), "env-url", ssl)
    if not chroma_heartbeat(endpoint.url, timeout=5.0):
        pytest.fail(f"VECEMBED_CHROMA_URL={url} is set but no Chroma heartbeat answers at {endpoint.url}")
    return endpoint


@pytest.fixture(params=["local-server", "env-url", "testcontainers"])
def chroma_endpoint(request: pytest.FixtureRequest) -> ChromaEndpoint:
    """Each real Chroma server available: the local ``chroma run``, VECEMBED_CHROMA_URL, a container."""
    fixture = {"local-server": "chroma_server", "env-url": "chroma_env_server", "testcontainers": "chroma_container"}
    endpoint: ChromaEndpoint = request.getfixturevalue(fixture[request.param])
    return endpoint
