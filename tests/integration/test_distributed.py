"""vecembed.distributed on a real local Ray cluster (``ray.init(num_cpus=2)``), the real model, real databases.

One Ray session for the module (start-up ~6-12 s). What is checked: ids and vectors equal those of the
single-process engine (max abs diff <= 1e-5), a killed actor process mid-job still ends exact (Ray re-runs
the task; deterministic ids + upsert), a re-run writes nothing, a bad document fails the job naming it and
nothing of its batch is written, and the CLI's ``--engine ray``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest_plugins = ["backend_fixtures", "ray_fixtures"]

pytest.importorskip("ray", reason="pip install 'vecembed[ray]'")
pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")

from ray_helpers import MODEL_ID, chroma_hashes, chroma_vectors, max_abs_diff, sts_docs  # noqa: E402

import vecembed  # noqa: E402
from vecembed.errors import IngestError  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def vd(ray_local: Any) -> Any:
    import vecembed.distributed as vd

    return vd


def test_embed_dataset_gives_the_providers_vectors(vd: Any, onnx_provider: Any, sts_sentences: list[str]) -> None:
    import ray.data

    texts = sts_sentences[:300]
    ds = ray.data.from_items([{"text": t, "k": i} for i, t in enumerate(texts)])
    out = vd.embed_dataset(ds, model=MODEL_ID, concurrency=1, batch_size=64).take_all()
    assert [row["k"] for row in sorted(out, key=lambda r: r["k"])] == list(range(300))  # other columns kept
    got = np.stack([row["embedding"] for row in sorted(out, key=lambda r: r["k"])])
    assert got.dtype == np.float32 and got.shape == (300, 384)
    assert float(np.max(np.abs(got - onnx_provider.embed_documents(texts)))) <= 1e-5


def test_ingest_into_a_chroma_server_equals_the_single_process_engine(
    vd: Any, onnx_provider: Any, sts_sentences: list[str], chroma_server: Any
) -> None:
    import ray.data

    docs = sts_docs(sts_sentences, 500)
    with vecembed.open_store("chroma", "single-exact", onnx_provider, url=chroma_server.url) as store:
        single = store.ingest(docs)
    assert single.written == 500

    ds = ray.data.from_items(docs, override_num_blocks=5)
    report = vd.ingest_dataset(ds, db="chroma", collection="ray-exact", url=chroma_server.url, model=MODEL_ID,
                               concurrency=2, batch_size=100)
    assert (report.documents, report.written, report.skipped, report.duplicates) == (500, 500, 0, 0)

    client = chroma_server.client()
    ours, theirs = chroma_vectors(client, "ray-exact"), chroma_vectors(client, "single-exact")
    assert set(ours) == {d["id"] for d in docs}
    assert max_abs_diff(ours, theirs) <= 1e-5
    # the same content hashes and metadata: the engine's records, not a second way of writing them
    assert chroma_hashes(client, "ray-exact") == chroma_hashes(client, "single-exact")
    identity = client.get_collection("ray-exact").metadata
    assert identity["vecembed:fingerprint"] == onnx_provider.info.fingerprint

    again = vd.ingest_dataset(ds, db="chroma", collection="ray-exact", url=chroma_server.url, model=MODEL_ID,
                              concurrency=2, batch_size=100)
    assert (again.documents, again.written, again.skipped) == (500, 0, 500)
    assert client.get_collection("ray-exact").count() == 500


def test_a_killed_actor_process_mid_job_still_ends_exact(
    vd: Any, onnx_provider: Any, sts_sentences: list[str], chroma_server: Any
) -> None:
    import psutil
    import ray.data

    docs = sts_docs(sts_sentences, 1200)
    ds = ray.data.from_items(docs, override_num_blocks=12)
    client = chroma_server.client()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["report"] = vd.ingest_dataset(ds, db="chroma", collection="ray-killed", url=chroma_server.url,
                                                  model=MODEL_ID, concurrency=1, batch_size=100)
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            outcome["error"] = exc

    job = threading.Thread(target=run)
    job.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        written = 0
        with contextlib.suppress(Exception):  # the collection appears with the first write
            written = client.get_collection("ray-killed").count()
        if 0 < written < len(docs):
            for proc in psutil.Process().children(recursive=True):
                try:
                    if "RecordEmbedder" in " ".join(proc.cmdline()):
                        os.kill(proc.pid, signal.SIGKILL)
                        killed = (proc.pid, written)
                        break
                except psutil.Error:
                    continue
        time.sleep(0.05)
    job.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert killed is not None, "the job ended before an actor could be killed"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    report = outcome["report"]
    stored = chroma_vectors(client, "ray-killed")
    assert set(stored) == {d["id"] for d in docs} and len(stored) == 1200  # zero lost, zero duplicated
    assert report.written == 1200 and report.documents == 1200
    want = onnx_provider.embed_documents([d["text"] for d in docs])
    got = np.stack([stored[d["id"]] for d in docs])
    assert float(np.max(np.abs(got - want))) <= 1e-5


def test_a_bad_document_fails_the_job_naming_it_and_nothing_of_its_batch_is_written(
    vd: Any, sts_sentences: list[str], chroma_server: Any
) -> None:
    import ray.data

    docs = sts_docs(sts_sentences, 400)
    docs[250] = {"id": "bad-250", "text": None, "metadata": {"n": 250, "half": "a"}}
    ds = ray.data.from_items(docs, override_num_blocks=8)  # blocks of 50 = one batch each
    with pytest.raises(IngestError, match=r"document id='bad-250'.*must be a str, got None") as caught:
        vd.ingest_dataset(ds, db="chroma", collection="ray-bad", url=chroma_server.url, model=MODEL_ID,
                          concurrency=1, batch_size=50)
    stored = set(chroma_vectors(chroma_server.client(), "ray-bad"))
    assert not stored & {d["id"] for d in docs[250:300]}  # the bad document's batch: nothing of it
    assert stored <= {d["id"] for d in docs}
    assert caught.value.report.written == len(stored)


def test_a_local_qdrant_folder_is_written_from_the_driver_and_equals_the_engine(
    vd: Any, onnx_provider: Any, sts_sentences: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")
    import ray.data
    from qdrant_client import QdrantClient

    texts = sts_sentences[:300] + sts_sentences[:5]  # repeats without ids: one document each
    rows = [{"text": t, "n": i % 3} for i, t in enumerate(texts)]
    report = vd.ingest_dataset(ray.data.from_items(rows, override_num_blocks=1), db="qdrant", collection="docs",
                               path=str(tmp_path / "ray"), model=MODEL_ID, metadata_columns=["n"],
                               concurrency=1, batch_size=400)
    assert (report.documents, report.written, report.duplicates) == (305, 300, 5)
    with vecembed.open_store("qdrant", "docs", onnx_provider, path=str(tmp_path / "single")) as store:
        store.ingest([{"text": r["text"], "metadata": {"n": r["n"]}} for r in rows[:300]])

    def points(folder: Path) -> dict[str, Any]:
        client = QdrantClient(path=str(folder))
        try:
            got, _ = client.scroll("docs", limit=1000, with_vectors=True, with_payload=True)
            return {p.payload["vecembed:id"]: (np.asarray(p.vector, np.float32), p.payload) for p in got}
        finally:
            client.close()

    ours, theirs = points(tmp_path / "ray"), points(tmp_path / "single")
    assert set(ours) == set(theirs) and len(ours) == 300
    assert max_abs_diff({k: v[0] for k, v in ours.items()}, {k: v[0] for k, v in theirs.items()}) <= 1e-5
    assert {k: v[1] for k, v in ours.items()} == {k: v[1] for k, v in theirs.items()}

    again = vd.ingest_dataset(ray.data.from_items(rows, override_num_blocks=1), db="qdrant", collection="docs",
                              path=str(tmp_path / "ray"), model=MODEL_ID, metadata_columns=["n"], concurrency=1,
                              batch_size=400)
    assert (again.written, again.skipped, again.duplicates) == (0, 300, 5)
    # a repeat in another batch is not seen (documented): it is one more unchanged document, never a second record
    split = vd.ingest_dataset(ray.data.from_items(rows, override_num_blocks=4), db="qdrant", collection="docs",
                              path=str(tmp_path / "ray"), model=MODEL_ID, metadata_columns=["n"], concurrency=1,
                              batch_size=100)
    assert split.written == 0 and len(points(tmp_path / "ray")) == 300


def test_the_datasink_writes_an_embedded_dataset_and_reports(
    vd: Any, onnx_provider: Any, sts_sentences: list[str], chroma_server: Any
) -> None:
    import ray.data

    docs = [{"id": i, "text": t, "metadata": {"i": i}} for i, t in enumerate(sts_sentences[:200])]
    embedded = vd.embed_dataset(ray.data.from_items(docs), model=MODEL_ID, concurrency=1)
    sink = vd.VecembedDatasink("chroma", "ray-sink", url=chroma_server.url, model=MODEL_ID)
    embedded.write_datasink(sink)
    assert sink.report is not None and (sink.report.documents, sink.report.written) == (200, 200)
    stored = chroma_vectors(chroma_server.client(), "ray-sink")
    assert set(stored) == {str(i) for i in range(200)}  # 1 and "1" are one id, as in the engine
    want = onnx_provider.embed_documents([d["text"] for d in docs])
    assert float(np.max(np.abs(np.stack([stored[str(i)] for i in range(200)]) - want))) <= 1e-5

    sink = vd.VecembedDatasink("chroma", "ray-sink", url=chroma_server.url, model=MODEL_ID)
    embedded.write_datasink(sink)
    assert sink.report is not None and (sink.report.written, sink.report.skipped) == (0, 200)


def test_a_collection_of_another_model_is_refused_before_the_job(vd: Any, chroma_server: Any) -> None:
    import ray.data

    ds = ray.data.from_items([{"text": "one"}, {"text": "two"}])
    with pytest.raises(vecembed.DimensionMismatchError):
        vd.ingest_dataset(ds, db="chroma", collection="ray-exact", url=chroma_server.url, backend="mock",
                          provider_options={"dimension": 32}, concurrency=1)


def test_the_cli_ingests_files_with_the_ray_engine(
    vd: Any, chroma_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vecembed.cli import main
    from vecembed.records import text_id

    first, second, third, fourth = (tmp_path / n for n in ("a.jsonl", "b.csv", "c.parquet", "d.txt"))
    first.write_text("".join(json.dumps({"id": f"a{i}", "text": f"alpha text {i}" + " long" * 300 * (i < 2)}) + "\n"
                             for i in range(30)))  # two texts over the mock's 256 words
    second.write_text("id,text\n" + "".join(f"b{i},beta text {i}\n" for i in range(20)))
    pq.write_table(pa.table({"id": list(range(100, 110)), "text": [f"gamma text {i}" for i in range(10)]}), third)
    fourth.write_text("delta one\n\ndelta two\n")  # a text file: one document a line, ids from the text
    # two one-CPU actors hold both CPUs: the readers take none, or the job would wait forever
    args = ["ingest", str(first), str(second), str(third), str(fourth), "--engine", "ray", "--workers", "2",
            "--db", "chroma", "--collection", "ray-cli", "--url", chroma_server.url, "--backend", "mock", "--json"]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (payload["documents"], payload["written"], payload["count"]) == (62, 62, 62)
    assert payload["truncated"] == 2  # counted by the actors (issue 22 #10: it was None, "n/a truncated")
    stored = set(chroma_vectors(chroma_server.client(), "ray-cli"))
    assert stored == ({f"a{i}" for i in range(30)} | {f"b{i}" for i in range(20)} | {str(i) for i in range(100, 110)}
                      | {text_id("delta one"), text_id("delta two")})


def test_one_text_file_through_both_engines_is_one_set_of_documents(
    vd: Any, chroma_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 21: the local engine gave id-less lines PATH:LINE, the Ray engine ids from the text: 1,000 documents.
    from vecembed.cli import main
    from vecembed.records import text_id

    monkeypatch.chdir(tmp_path)
    lines = [f"line {i}: a sentence about topic {i % 17}" for i in range(500)]
    (tmp_path / "five-hundred.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["five-hundred.txt", "--db", "chroma", "--collection", "one-id-rule", "--url", chroma_server.url,
              "--backend", "mock", "--json"]
    assert main(["ingest", *common]) == 0
    local = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (local["written"], local["count"]) == (500, 500)
    assert main(["ingest", *common, "--engine", "ray", "--workers", "2"]) == 0
    ray_run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the same ids, texts and metadata: the Ray run finds every document stored unchanged
    assert (ray_run["documents"], ray_run["written"], ray_run["skipped"], ray_run["count"]) == (500, 0, 500, 500)
    collection = chroma_server.client().get_collection("one-id-rule")
    assert collection.count() == 500
    assert set(chroma_vectors(chroma_server.client(), "one-id-rule")) == {text_id(line) for line in lines}


def test_the_readme_command_runs_as_written(vd: Any, chroma_server: Any, tmp_path: Path) -> None:
    from cli_helpers import readme_args, run_cli
    from ray_fixtures import private_temp_dir

    (tmp_path / "part-1.jsonl").write_text(
        "".join(json.dumps({"id": f"p{i}", "text": f"part one, line {i}", "metadata": {"i": i}}) + "\n"
                for i in range(40)))
    (tmp_path / "part-2.csv").write_text("id,text\n" + "".join(f"q{i},part two line {i}\n" for i in range(25)))
    args = [a.replace("http://localhost:8000", chroma_server.url) for a in readme_args("ingest_ray")]
    ray_tmp = private_temp_dir()  # the command starts its own local cluster: keep it private
    try:
        proc = run_cli(*args, cwd=tmp_path, env={"RAY_TMPDIR": ray_tmp})
    finally:
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert "65 written" in proc.stdout and "now holds 65 documents" in proc.stdout
    # Issue 22 #10: the report counts truncation ("n/a truncated" before), and Ray's core-worker ERROR line about
    # actor arguments in the object store (printed for every Ray Data actor pool) is not shown
    assert "0 truncated" in proc.stdout
    assert "has constructor arguments in the object store" not in proc.stderr, proc.stderr
    stored = chroma_hashes(chroma_server.client(), "docs")
    assert stored["p3"]["i"] == 3 and "q24" in stored and len(stored) == 65
