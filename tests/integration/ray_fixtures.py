"""Ray fixtures and helpers for the distributed tests: real clusters on this machine, stopped by their handles.

Every cluster started here has a private temp dir (a short path: Ray's Unix sockets live under it), so no
other session's Ray is touched; nothing here runs ``ray stop``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest


def private_temp_dir() -> str:
    # Not under pytest's tmp_path: the session folder's socket paths must stay under 107 characters.
    return tempfile.mkdtemp(prefix="vr-", dir="/tmp")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """``ray.init(num_cpus=2)`` for one test module (start-up is ~6-12 s here: shared by the module's tests)."""
    ray = pytest.importorskip("ray", reason="pip install 'vecembed[ray]'")
    pytest.importorskip("ray.data", reason="pip install 'vecembed[ray]'")
    if ray.is_initialized():  # pragma: no cover - a previous module's session left connected
        ray.shutdown()
    temp = private_temp_dir()
    try:
        ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
