"""vecembed.migrate end to end: the CLI, SIGKILL at each phase and a re-run, a reader polling the alias, peak memory.

The kill tests run ``vecembed migrate`` in a subprocess on a Qdrant Edge folder (persisted, fast to write) with the
mock provider, with ``VECEMBED_MIGRATE_KILL_AT`` making it SIGKILL itself at a named point; the re-run must end
with the target exactly equal to the source and embed only what the killed run had not written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import readme_args, run_cli

import vecembed
from vecembed.cli import main
from vecembed.errors import ModelMismatchError
from vecembed.memory_store import MemoryDatabase
from vecembed.migration import KILL_ENV, default_target_name

pytestmark = pytest.mark.integration
pytest.importorskip("qdrant_edge", reason="pip install 'vecembed[qdrant-edge]'")

HERE = Path(__file__).parent


def docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"d{i}",
            "text": f"document {i} about {'cats' if i % 2 else 'dogs'} number {i}",
            "metadata": {"n": i, "kind": "odd" if i % 2 else "even"},
        }
        for i in range(start, start + n)
    ]


def seed_edge(root: Path, n: int) -> Path:
    """The source collection "docs-v1" behind alias "docs" in ``root/qdrant-edge`` (where the CLI's --path looks)."""
    path = root / "qdrant-edge"
    with vecembed.load_provider("mock", dimension=16) as old:
        with vecembed.open_store("qdrant-edge", "docs-v1", old, path=str(path)) as store:
            store.ingest(docs(n))
        vecembed.set_alias("qdrant-edge", "docs", "docs-v1", path=str(path))
    return path


def contents(path: Path, collection: str) -> dict[str, tuple[str, Any, str]]:
    with vecembed.open_store("qdrant-edge", collection, path=str(path)) as store:
        return {r.id: (r.text, dict(r.metadata), r.content_hash) for b in store.backend.scan(500) for r in b}


MIGRATE = (
    "migrate",
    "--db",
    "qdrant-edge",
    "--collection",
    "docs",
    "--to-backend",
    "mock",
    "--to-opt",
    "dimension=32",
    "--batch-size",
    "100",
    "--json",
)


@pytest.mark.slow  # ~4 s: each command opens the Edge shards again
def test_cli_migrate_rollback_drop_old(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edge = seed_edge(tmp_path, 50)
    where = ("--db", "qdrant-edge", "--collection", "docs", "--path", str(tmp_path))

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(list(args))  # in this process (the kill tests below run it as a subprocess)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli(*MIGRATE, "--path", str(tmp_path))
    report = json.loads(out)
    assert code == 0 and (report["embedded"], report["switched"], report["documents"]) == (50, True, 50)
    code, out, _ = cli("migrate", *where, "--rollback", "--json")
    assert code == 0 and json.loads(out)["rolled_back"] and json.loads(out)["target"] == "docs-v1"
    assert vecembed.aliases("qdrant-edge", path=str(edge)) == {"docs": "docs-v1"}
    code, _, err = cli("migrate", *where, "--to-backend", "mock", "--to-opt", "dimension=16")
    assert code == 1 and "nothing to migrate" in err
    code, _, err = cli("migrate", *where, "--rollback", "--drop-old")
    assert code == 1 and "--rollback takes the alias" in err
    code, out, _ = cli(*MIGRATE, "--path", str(tmp_path), "--drop-old")  # forward again, then drop the old one
    assert code == 0 and json.loads(out)["dropped"] == "docs-v1" and json.loads(out)["embedded"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("point", ["copy:1500", "catch-up", "switch"])
def test_sigkill_at_each_phase_then_a_rerun_ends_exact(tmp_path: Path, point: str) -> None:
    edge = seed_edge(tmp_path, 3000)
    killed = run_cli(*MIGRATE, "--path", str(tmp_path), env={KILL_ENV: point}, check=False)
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no cleanup ran
    with vecembed.load_provider("mock", dimension=32) as new:
        target = default_target_name("docs-v1", new.info)
    assert vecembed.aliases("qdrant-edge", path=str(edge)) == {"docs": "docs-v1"}  # not switched yet
    with vecembed.open_store("qdrant-edge", target, path=str(edge)) as store:
        written = store.count()
    assert written == (3000 if point != "copy:1500" else written) and 0 < written <= 3000

    report = json.loads(run_cli(*MIGRATE, "--path", str(tmp_path)).stdout)
    assert report["embedded"] == 3000 - written and report["skipped"] == written  # only the missing ones
    assert (report["documents"], report["switched"], report["target"]) == (3000, True, target)
    assert vecembed.aliases("qdrant-edge", path=str(edge)) == {"docs": target}
    assert contents(edge, target) == contents(edge, "docs-v1")


@pytest.mark.slow
def test_a_reader_polling_the_alias_sees_old_then_new_results_and_never_an_error() -> None:
    db = MemoryDatabase()
    queries = ["cats number 7", "dogs number 1200"]
    with vecembed.load_provider("mock", dimension=16) as old, vecembed.load_provider("mock", dimension=32) as new:
        with vecembed.open_store("memory", "docs-v1", old, client=db) as store:
            store.ingest(docs(4000))
        db.set_alias("docs", "docs-v1")
        expected = {"docs-v1": [[h.id for h in hs] for hs in store.search_many(queries, k=5)]}
        pinned = vecembed.open_store("memory", "docs", old, client=db)
        follower = vecembed.open_store("memory", "docs", client=db)  # loads what the alias's collection records
        seen: list[tuple[str, list[list[str]]]] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                try:
                    hits = follower.search_many(queries, k=5)
                    seen.append((follower.collection, [[h.id for h in hs] for hs in hits]))
                except BaseException as exc:  # any error at all fails the test
                    errors.append(exc)

        reader = threading.Thread(target=poll)
        reader.start()
        try:
            report = vecembed.migrate("memory", "docs", new, client=db, batch_size=64)
            seen_before_switch = len(seen)
        finally:
            done.set()
            reader.join()
        with vecembed.open_store("memory", report.target, new, client=db) as moved:
            expected[report.target] = [[h.id for h in hs] for hs in moved.search_many(queries, k=5)]
        assert not errors, errors[:3]
        assert seen_before_switch > 0 and {c for c, _ in seen} <= {"docs-v1", report.target}
        # each answer is wholly the old collection's or wholly the new one's, never a mixture
        assert all(ids == expected[collection] for collection, ids in seen)
        # the old provider is refused after the switch, naming the alias and the new model
        with pytest.raises(ModelMismatchError, match=r"alias 'docs' moved .*" + report.target):
            pinned.search("cats", k=1)
        assert follower.search("cats number 7", k=1)[0].id == expected[report.target][0][0]
        pinned.close()
        follower.close()


def _peak_kib(n: int) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, str(HERE / "migrate_rss.py"), str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return int(json.loads(out.strip().splitlines()[-1])["maxrss_kib"])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_collection() -> None:
    small, large = _peak_kib(20_000), _peak_kib(200_000)
    # The target here keeps {id: hash} (~150 bytes a record, what any real target keeps too); the migration's
    # own memory is bounded by a scan page and an engine chunk.
    assert large - small < 150 * 1024, (small, large)


@pytest.mark.slow
def test_the_documented_commands(tmp_path: Path) -> None:
    edge = tmp_path / "vecembed-data" / "qdrant-edge"  # where the CLI looks without --path
    with vecembed.load_provider("mock", dimension=16) as old:
        with vecembed.open_store("qdrant-edge", "notes-v1", old, path=str(edge)) as store:
            store.ingest(docs(30))
        vecembed.set_alias("qdrant-edge", "notes", "notes-v1", path=str(edge))
    done = run_cli(*readme_args("migrate"), cwd=tmp_path)
    target = vecembed.aliases("qdrant-edge", path=str(edge))["notes"]
    assert target.startswith("notes-v1__") and "30 documents, 30 embedded" in done.stdout
    assert "rolled back" in run_cli(*readme_args("migrate_rollback"), cwd=tmp_path).stdout
    assert vecembed.aliases("qdrant-edge", path=str(edge)) == {"notes": "notes-v1"}
    run_cli(*readme_args("migrate"), cwd=tmp_path)
    assert "dropped 'notes-v1'" in run_cli(*readme_args("migrate_drop_old"), cwd=tmp_path).stdout
    assert contents(edge, target) == {
        d["id"]: (d["text"], d["metadata"], contents(edge, target)[d["id"]][2]) for d in docs(30)
    }
