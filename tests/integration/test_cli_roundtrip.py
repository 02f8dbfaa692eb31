"""``vecembed ingest`` + ``vecembed search`` on a folder of files, real model, both databases, as in the README.

The commands run in subprocesses exactly as a user types them (the README's
CLI section uses the same ones); results are checked against
sentence-transformers' own nearest neighbours.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import readme_args, run_cli
from pg_fixtures import pg_url  # noqa: F401

pytest_plugins = ["backend_fixtures"]  # vecembed_cache: a private ONNX cache for the session

# Exports go to the session's private cache (VECEMBED_CACHE, inherited by subprocesses), not the user's.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("vecembed_cache")]

#: A small folder of notes: relative path -> text.
NOTES = {
    "cooking/pasta.md": "# Pasta\n\nBoil salted water, cook the spaghetti for nine minutes, then toss it with garlic "
                        "and olive oil.",
    "cooking/bread.txt": "Knead the dough for ten minutes and let it rise overnight before baking the loaf.",
    "garden/tomatoes.txt": "Tomato plants need full sun, deep watering and a stake to climb.",
    "travel/trains.md": "The night train from Vienna reaches Rome in the morning; book a sleeper cabin early.",
    "money/budget.txt": "Put aside a fifth of every pay cheque and review your spending each month.",
    "pets/cat.txt": "Our cat sleeps all day on the warm windowsill and hunts moths at night.",
}

QUERIES = {
    "how long do I cook noodles?": "cooking/pasta.md",
    "saving money from my salary": "money/budget.txt",
    "an overnight rail journey to Italy": "travel/trains.md",
}


@pytest.fixture(scope="module")
def notes_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notes")
    for rel, text in NOTES.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    (folder / "ignored.py").write_text("print('not a document')\n", encoding="utf-8")
    return folder


def _expected_order(st_model: Any, query: str) -> tuple[list[str], np.ndarray[Any, Any]]:
    ids = sorted(NOTES)
    docs = st_model.encode([NOTES[i] for i in ids], normalize_embeddings=True, convert_to_numpy=True)
    q = st_model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
    scores = docs @ q
    order = np.argsort(-scores)
    return [ids[i] for i in order], scores[order]


@pytest.mark.parametrize("db", ["chroma", "qdrant", "qdrant-edge", "pgvector"])
def test_ingest_then_search_a_folder(db: str, notes_folder: Path, tmp_path: Path, st_model: Any,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     request: pytest.FixtureRequest) -> None:
    module = {"chroma": "chromadb", "qdrant": "qdrant_client", "qdrant-edge": "qdrant_edge", "pgvector": "psycopg"}
    pytest.importorskip(module[db])
    from vecembed.cli import main

    shutil.copytree(notes_folder, tmp_path / "notes")
    monkeypatch.delenv("VECEMBED_DATA", raising=False)
    # pgvector is a server: the README's commands take it from $VECEMBED_PGVECTOR_URL (a private server here).
    env = {"VECEMBED_PGVECTOR_URL": request.getfixturevalue("pg_url")} if db == "pgvector" else None
    if env:
        monkeypatch.setenv("VECEMBED_PGVECTOR_URL", env["VECEMBED_PGVECTOR_URL"])

    # The README's commands, verbatim, in subprocesses: ingest ./notes, then search from another process.
    first = run_cli(*readme_args(f"ingest_{db}"), cwd=tmp_path, env=env)
    assert f"ingested {len(NOTES)} documents into 'notes'" in first.stdout
    assert f"now holds {len(NOTES)} documents" in first.stdout
    if db != "pgvector":
        assert (tmp_path / "vecembed-data" / db).is_dir()  # the default data folder, in the working directory
    search = run_cli(*readme_args(f"search_{db}"), cwd=tmp_path, env=env)
    if db in ("chroma", "qdrant-edge"):  # the README shows the text output for these and --json for the others
        assert search.stdout.startswith(" 1. ") and "[cooking/pasta.md]" in search.stdout.splitlines()[0]
    else:
        hits = json.loads(search.stdout)
        assert len(hits) == 3 and hits[0]["id"] == "cooking/pasta.md"

    # The rest in-process (same code, no interpreter start per call).
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VECEMBED_CHROMA_URL", raising=False)
    monkeypatch.delenv("VECEMBED_QDRANT_URL", raising=False)
    assert main(["ingest", "notes", "--db", db, "--collection", "notes", "--json"]) == 0
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["count"] == len(NOTES)  # re-running is safe: same ids
    assert (rerun["written"], rerun["skipped"]) == (0, len(NOTES))  # and nothing is embedded again

    for query, best in QUERIES.items():
        assert main(["search", query, "--db", db, "--collection", "notes", "-k", "3", "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)
        expected_ids, expected_scores = _expected_order(st_model, query)
        assert hits[0]["id"] == best
        assert [h["id"] for h in hits] == expected_ids[:3]
        np.testing.assert_allclose([h["score"] for h in hits], expected_scores[:3], atol=1e-3)
        assert hits[0]["text"] == NOTES[best]
        assert hits[0]["metadata"]["source"] == best


def test_ingest_into_a_real_chroma_server(notes_folder: Path, tmp_path: Path, chroma_server: Any) -> None:
    url = chroma_server.url
    run_cli("ingest", str(notes_folder), "--db", "chroma", "--collection", "cli-notes", "--url", url, cwd=tmp_path)
    # the server URL can also come from the environment, as docker/README.md describes
    proc = run_cli("search", "baking bread at home", "--db", "chroma", "--collection", "cli-notes", "--json",
                   cwd=tmp_path, env={"VECEMBED_CHROMA_URL": url})
    hits = json.loads(proc.stdout)
    assert hits[0]["id"] == "cooking/bread.txt"
    assert len(hits) == 5


def test_mismatched_model_is_refused_in_one_line(notes_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("qdrant_client")
    where = ["--db", "qdrant", "--collection", "notes", "--path", str(tmp_path / "db")]
    run_cli("ingest", str(notes_folder), *where, cwd=tmp_path)
    proc = run_cli("search", "bread", *where, "--backend", "mock", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("vecembed: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert "all-MiniLM-L6-v2" in proc.stderr


def test_unknown_model_and_info(tmp_path: Path, minilm_path: Path) -> None:
    proc = run_cli("info", "--model", str(tmp_path / "no-such-model"), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "was not found" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    info = json.loads(run_cli("info", "--json", cwd=tmp_path).stdout)
    assert info["info"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["info"]["dimension"] == 384
    assert info["health"]["ok"] is True


def test_a_chroma_server_killed_mid_ingest_then_a_rerun_ends_exact(tmp_path: Path, chroma_server_factory: Any) -> None:
    # issue 10 #19: the server dies (SIGKILL) while `vecembed ingest` writes; the CLI retries, then says what is
    # committed and that a re-run resumes; after a restart on the same data the re-run ends exact.
    import chromadb
    from cli_helpers import vecembed_command

    total = 12_000
    (tmp_path / "docs.txt").write_text("".join(f"document number {n}\n" for n in range(total)), encoding="utf-8")
    where = ["--db", "chroma", "--collection", "killed", "--backend", "mock"]
    env = {**os.environ, "VECEMBED_NO_PROGRESS": "1", "VECEMBED_OFFLINE": "1"}
    root = tmp_path / "server"
    with chroma_server_factory(root) as first:
        proc = subprocess.Popen([*vecembed_command(), "ingest", "docs.txt", *where, "--url", first.url], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = chromadb.HttpClient(host=first.host, port=first.port)
        deadline, seen = time.monotonic() + 120, 0
        while time.monotonic() < deadline and proc.poll() is None and seen < 1_000:
            with contextlib.suppress(Exception):  # the collection appears with the first write
                seen = client.get_collection("killed").count()
            time.sleep(0.05)
        assert proc.poll() is None and seen >= 1_000, "the ingest ended before the server could be killed"
        os.kill(first.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("vecembed: error: ingest into chroma collection 'killed' stopped after"), message
    assert "are committed" in message and "re-run the same ingest" in message, message
    assert "did not answer" in message and "after 3 retries" in message, message  # retried before giving up
    committed = int(re.search(r"(\d+) are committed", message).group(1))  # type: ignore[union-attr]
    assert committed >= 1_000

    with chroma_server_factory(root) as second:  # the same data folder, a new port
        report = json.loads(run_cli("ingest", "docs.txt", *where, "--url", second.url, "--json", cwd=tmp_path).stdout)
    assert report["count"] == total  # nothing lost, nothing duplicated
    assert report["skipped"] >= committed and report["written"] + report["skipped"] == total
