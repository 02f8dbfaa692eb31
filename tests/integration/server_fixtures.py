"""`vecembed serve` as a real process for the integration tests: started on a free port, stopped by its PID.

``serve(*args)`` is a context manager for one server; ``readme_server`` is the
README's own command (``README_COMMANDS["serve"]``) on a free port, for the
README's Python block (which talks to http://127.0.0.1:8080).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

START_TIMEOUT_S = 60.0
#: The address the README's examples use; tests swap in the real port.
README_URL = "http://127.0.0.1:8080"


@dataclass
class Served:
    """A running server: its base URL and process."""

    url: str
    proc: subprocess.Popen[str]

    @property
    def api(self) -> str:
        return f"{self.url}/v1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(*args: str, port: int | None = None) -> Iterator[Served]:
    """``vecembed serve ARGS --port <free>``; yields once /health answers 200; SIGTERM (then kill) by its PID."""
    httpx = pytest.importorskip("httpx", reason="pip install 'vecembed[remote]'")
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vecembed", "serve", *args, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    served = Served(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = proc.stderr.read() if proc.stderr else ""
                pytest.fail(f"vecembed serve exited with {proc.returncode}: {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{served.url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("vecembed serve did not become healthy in time")
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(scope="session")
def readme_server(vecembed_cache: Any) -> Iterator[str]:
    """The README's `vecembed serve` command, run as written but on a free port; yields its base URL."""
    pytest.importorskip("starlette", reason="pip install 'vecembed[server]'")
    from cli_helpers import readme_args

    args = readme_args("serve")[1:]  # less the word "serve"
    at = args.index("--port")
    del args[at:at + 2]
    with serve(*args) as served:
        yield served.url
