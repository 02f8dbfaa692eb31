"""vecembed.distributed on a two-node Ray cluster started on this machine (ray.cluster_utils.Cluster).

Each node has one CPU of its own, so an actor pool of two one-CPU actors can only run with one actor on
each node: the job below embeds on both nodes and writes to a real Chroma server from both. The cluster
lives in a private temp dir and is stopped by its own handle (``cluster.shutdown()``), never ``ray stop``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest_plugins = ["backend_fixtures"]

pytest.importorskip("ray.data", reason="pip install 'vecembed[ray]'")
pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")

from ray_fixtures import private_temp_dir  # noqa: E402
from ray_helpers import MODEL_ID, chroma_vectors, max_abs_diff, sts_docs  # noqa: E402

import vecembed  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Any]:
    import ray
    import ray.data
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # pragma: no cover - another module's session left connected
        ray.shutdown()
    temp = private_temp_dir()
    # Ray notes the latest cluster's address in $RAY_TMPDIR/ray/ray_current_cluster: keep it private too.
    old_tmpdir = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    os.makedirs(os.path.join(temp, "ray"), exist_ok=True)
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": temp,
                                                                "include_dashboard": False})
        cluster.add_node(num_cpus=1, temp_dir=temp)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield cluster
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        if old_tmpdir is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old_tmpdir
        shutil.rmtree(temp, ignore_errors=True)


def test_two_nodes_embed_and_write_the_same_records_as_one_process(
    two_nodes: Any, onnx_provider: Any, sts_sentences: list[str], chroma_server: Any
) -> None:
    import ray
    import ray.data

    import vecembed.distributed as vd

    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 2 and all(n["Resources"]["CPU"] == 1 for n in alive)
    docs = sts_docs(sts_sentences, 600)
    report = vd.ingest_dataset(ray.data.from_items(docs, override_num_blocks=6), db="chroma",
                               collection="two-nodes", url=chroma_server.url, model=MODEL_ID, concurrency=2,
                               num_cpus=1, batch_size=100)
    assert (report.documents, report.written) == (600, 600)
    with vecembed.open_store("chroma", "two-nodes-single", onnx_provider, url=chroma_server.url) as store:
        store.ingest(docs)
    client = chroma_server.client()
    ours = chroma_vectors(client, "two-nodes")
    assert set(ours) == {d["id"] for d in docs}
    assert max_abs_diff(ours, chroma_vectors(client, "two-nodes-single")) <= 1e-5
    want = onnx_provider.embed_documents([d["text"] for d in docs])
    assert float(np.max(np.abs(np.stack([ours[d["id"]] for d in docs]) - want))) <= 1e-5
