"""The ``vecembed`` CLI with the mock backend: parsing, inputs, outputs, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vecembed
from vecembed import registry
from vecembed.cli import EXIT_ERROR, EXIT_UNHEALTHY, build_parser, main
from vecembed.cli._common import error_line, open_provider, parse_options
from vecembed.cli.inputs import Document, read_documents, read_texts
from vecembed.errors import (
    CollectionNotFoundError,
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    ModelMismatchError,
    ModelNotFoundError,
)
from vecembed.providers.mock import MockProvider
from vecembed.registry import default_backend


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The CLI reads these; a developer's shell must not redirect unit tests to a server or their data.
    monkeypatch.delenv("VECEMBED_CHROMA_URL", raising=False)
    monkeypatch.delenv("VECEMBED_QDRANT_URL", raising=False)
    monkeypatch.setenv("VECEMBED_DATA", str(tmp_path / "data"))


# -- inputs -----------------------------------------------------------------------------------


def test_ids_are_unique_per_source_and_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 10 #2: a/list.txt and b/list.txt both gave "list.txt:1"; two stdin runs both gave "stdin:1".
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "list.txt").write_text("same first line\n", encoding="utf-8")
    a, b = read_documents("a/list.txt"), read_documents(tmp_path / "b" / "list.txt")
    # The one id rule (issue 21): a line without an id is addressed by its text, whichever file holds it
    assert (a[0].id, b[0].id) == (None, None)
    assert (a[0].metadata, b[0].metadata) == ({"source": "a/list.txt"}, {"source": "b/list.txt"})
    assert read_documents("a/list.txt")[0].id == a[0].id  # stable across runs
    first = read_documents("-", stdin=io.StringIO("one\ntwo\n"))
    second = read_documents("-", stdin=io.StringIO("three\n"))
    assert [d.id for d in first + second] == [None, None, None]  # addressed by their text: never collide
    assert first[0].metadata == {"source": "stdin"}


def test_binary_input_is_refused_with_file_and_offset(tmp_path: Path) -> None:
    # Issue 10 #3: /bin/ls was ingested as 706 mojibake documents.
    (tmp_path / "blob.txt").write_bytes(b"ELF header\x00\x01\x02")
    with pytest.raises(InvalidInputError, match=r"blob.txt: not a text file \(a NUL byte at byte offset 10\)"):
        read_documents(tmp_path / "blob.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"latin1.txt: not UTF-8 text .* byte offset 3"):
        read_documents(tmp_path / "latin1.txt")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "bad.md").write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInputError, match=r"bad\.md: not UTF-8"):
        read_documents(tmp_path / "notes")
    with pytest.raises(InvalidInputError, match="NUL byte on line 2"):
        read_documents("-", stdin=io.StringIO("text\nbin\x00ary\n"))


_PEAK_RSS = """
import resource, sys
from vecembed.cli.inputs import read_documents
try:
    read_documents(sys.argv[1])
except Exception as exc:
    print(type(exc).__name__, exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
"""


def test_a_big_binary_file_is_refused_from_its_first_block(tmp_path: Path) -> None:
    # Issue 22 #6: a 2 GB sparse file cost 2.1 GB RSS before it was refused (read whole, decoded, split).
    pytest.importorskip("resource", reason="peak RSS is read with the resource module (POSIX)")
    peaks = {}
    for mib in (8, 512):
        sparse = tmp_path / f"zeros-{mib}.txt"
        with sparse.open("wb") as fh:
            fh.truncate(mib << 20)  # a hole: no disk written, every byte reads as NUL
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(sparse)], capture_output=True, text=True,
                              timeout=120, check=True)
        message, peak = proc.stdout.strip().splitlines()
        assert message == (f"InvalidInputError {sparse}: not a text file (a NUL byte at byte offset 0); "
                           "nothing was read")
        peaks[mib] = int(peak) / 1024
    # 64x the file, the same memory (a few MiB of noise); before, the 512 MiB file alone added > 512 MiB
    assert peaks[512] - peaks[8] < 24, peaks


def test_text_streams_in_blocks_that_split_lines_and_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reading a block at a time must not change a document: lines and UTF-8 characters cut by a block boundary.
    from vecembed.cli import inputs

    monkeypatch.chdir(tmp_path)
    text = "caf\u00e9 \u2603 one\r\ntwo\rthree\n\n\u00fcber four"
    (tmp_path / "t.txt").write_text(text, encoding="utf-8", newline="")
    (tmp_path / "bad.txt").write_bytes(text.encode("utf-8") + b" \xe2\x98")  # a character cut by the end
    # the line numbers (where each document came from) survive the blocks; the ids come from the text
    want = [("t.txt line 1", "caf\u00e9 \u2603 one"), ("t.txt line 2", "two"), ("t.txt line 3", "three"),
            ("t.txt line 5", "\u00fcber four")]
    size = len(text.encode("utf-8"))
    for block in (1, 2, 3, 5, 1 << 20):
        monkeypatch.setattr(inputs, "BLOCK_SIZE", block)
        docs = read_documents("t.txt")
        assert list(zip(docs.origins, [d.text for d in docs], strict=True)) == want, block
        assert {d.id for d in docs} == {None}, block
        with pytest.raises(InvalidInputError, match=rf"invalid byte b'\\xe2' at byte offset {size + 1}\)"):
            read_documents("bad.txt")
        stdin = read_documents("-", stdin=io.StringIO('\n{"text": "a"}\n{"text": "b\u00e9"}\n'))
        assert [(d.id, d.text) for d in stdin] == [(None, "a"), (None, "b\u00e9")]  # stdin JSONL without ids
        with pytest.raises(InvalidInputError, match="NUL byte on line 3"):
            read_documents("-", stdin=io.StringIO("one\r\ntwo\nthr\x00ee\n"))


def test_txt_one_document_per_non_blank_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "notes.txt"
    path.write_text("first line\n\n  \nsecond line\r\nthird\n", encoding="utf-8")
    docs = read_documents(path)
    assert [d.text for d in docs] == ["first line", "second line", "third"]
    # no ids: the engine addresses each line by its text (the same ids as the API and --engine ray)
    assert [d.id for d in docs] == [None, None, None]
    assert docs.origins[1] == "notes.txt line 4"
    assert docs[1].metadata == {"source": "notes.txt"}


def test_jsonl_ids_text_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "docs.jsonl"
    rows = [
        {"id": "a", "text": "alpha", "metadata": {"lang": "en", "tags": ["x", "y"], "skip": None}},
        {"text": "no id here"},
        {"id": 7, "text": "numeric id"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    docs = read_documents(path)
    assert docs[0] == Document("a", "alpha", {"lang": "en", "tags": '["x", "y"]'})
    assert docs[1].id is None  # addressed by its text
    assert docs[2].id == "7"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "docs.jsonl line 2: not valid JSON"),
        ('{"id": "b", "text": 5}', '"text" must be a string'),
        # Issue 10 #9: a wrong field name says the field is missing and lists what was found.
        ('{"id": "b", "body": "t"}', r"docs.jsonl line 2: no \"text\" field \(fields found: 'id', 'body'\)"),
        ('{"id": "b", "text": "t", "metadata": [1]}', "'metadata' must be an object"),
        ('{"id": "a", "text": "again"}', r"id 'a' appears twice: \S*docs.jsonl line 1 and \S*docs.jsonl line 2;"),
    ],
)
def test_bad_jsonl_is_one_clear_error(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=message):
        read_documents(path)


def test_folder_of_files_ids_are_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("apples are red\n", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# Bananas\n\nare yellow", encoding="utf-8")
    (tmp_path / "ignored.py").write_text("print('no')", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("secret", encoding="utf-8")
    docs = read_documents(tmp_path)
    assert [(d.id, d.text) for d in docs] == [("a.txt", "apples are red"), ("sub/b.md", "# Bananas\n\nare yellow")]
    assert docs[1].metadata == {"source": "sub/b.md"}


def test_missing_input_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file or folder"):
        read_documents(tmp_path / "nope.txt")
    with pytest.raises(InvalidInputError, match=r"no non-empty \.txt/\.md files"):
        read_documents(tmp_path)


def test_stdin_text_and_jsonl() -> None:
    assert read_texts("-", stdin=io.StringIO("one\ntwo\n")) == ["one", "two"]
    docs = read_documents("-", stdin=io.StringIO('{"id": "x", "text": "from json"}\n'))
    assert docs == [Document("x", "from json", {})]


# -- helpers ----------------------------------------------------------------------------------


def _installed(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make the registry see exactly ``modules`` as importable."""
    monkeypatch.setattr(registry, "importable", lambda name: name in modules)


@pytest.mark.parametrize(
    ("installed", "expected"),
    [(("onnxruntime", "torch"), "onnx"), (("onnxruntime",), "onnx"), (("torch",), "torch")],
)
def test_default_backend_is_onnx_when_onnxruntime_is_installed_else_torch(
    monkeypatch: pytest.MonkeyPatch, installed: tuple[str, ...], expected: str
) -> None:
    _installed(monkeypatch, *installed)
    assert default_backend() == expected


def test_default_backend_without_a_runtime_names_the_onnx_extra(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _installed(monkeypatch)
    with pytest.raises(MissingDependencyError, match=r"pip install 'vecembed\[onnx\]'"):
        default_backend()
    with pytest.raises(MissingDependencyError):
        vecembed.load_provider()
    build_parser()  # --help and --version still work: the parser does not ask for the default
    assert main(["info"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "vecembed[onnx]" in err and len(err.strip().splitlines()) == 1


def test_cli_and_load_provider_use_the_one_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, "torch")
    asked: list[str] = []

    def fake_class(name: str) -> type:
        asked.append(name)
        return MockProvider

    monkeypatch.setattr(registry, "provider_class", fake_class)
    args = build_parser().parse_args(["info"])
    with open_provider(args), vecembed.load_provider():
        pass
    assert asked == ["torch", "torch"]


def test_parse_options_types_values() -> None:
    assert parse_options(["dimension=64", "normalize=false", "quantize=int8", "x=None"]) == {
        "dimension": 64, "normalize": False, "quantize": "int8", "x": None}
    with pytest.raises(vecembed.VecembedError, match="KEY=VALUE"):
        parse_options(["oops"])


def test_error_line_is_one_line_with_what_to_do() -> None:
    line = error_line(ModelNotFoundError("foo/bar", ["local directory foo/bar: does not exist", "hub: offline"]))
    assert "\n" not in line
    assert "foo/bar" in line and "hub: offline" in line and "--model" in line
    line = error_line(ModelMismatchError("collection 'c' was written with model A\nnot B", expected="A", got="B"))
    assert "\n" not in line and "another --collection" in line
    assert error_line(RuntimeError("boom")) == "RuntimeError: boom"


@pytest.mark.parametrize(
    ("exc", "hint"),
    [
        (ModelLoadError("model.safetensors is truncated"), "another --model"),
        (InvalidInputError("texts[3] must be str"), "nothing was written"),
        (ModelMismatchError("written with model A", expected="A", got="B"), "another --collection"),
    ],
)
def test_error_line_picks_the_hint_by_class(exc: Exception, hint: str) -> None:
    message, _, advice = error_line(exc).partition(" -> ")
    assert message == str(exc) and hint in advice


def test_an_unexpected_error_asks_for_debug_and_a_library_error_does_not(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vecembed.cli import models

    def boom(_: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(models, "cmd_info", boom)
    assert main(["info", "-b", "mock"]) == EXIT_ERROR
    assert "--debug" in capsys.readouterr().err

    def bad_model(_: object) -> int:
        raise ModelLoadError("config.json: not valid JSON")

    monkeypatch.setattr(models, "cmd_info", bad_model)
    assert main(["info", "-b", "mock"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "config.json: not valid JSON" in err and "--debug" not in err


# -- commands ---------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"vecembed {vecembed.__version__}"


def test_info_json_mock(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--backend", "mock", "--opt", "dimension=32", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    with vecembed.load_provider("mock", dimension=32) as reference:
        assert payload["info"]["fingerprint"] == reference.info.fingerprint
    assert payload["info"]["dimension"] == 32
    assert payload["info"]["backend"] == "mock"
    assert payload["health"]["ok"] is True
    assert payload["health"]["checks"]["shape"] is True


def test_info_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "-b", "mock"]) == 0
    out = capsys.readouterr().out
    assert "dimension     384" in out
    assert "health        ok" in out


def test_info_unhealthy_exits_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from vecembed.providers.mock import MockProvider
    from vecembed.types import HealthReport

    def broken(self: MockProvider) -> HealthReport:
        return HealthReport(ok=False, latency_ms=1.0, detail="probe failed: finite", component="provider")

    monkeypatch.setattr(MockProvider, "health_check", broken)
    assert main(["info", "-b", "mock"]) == EXIT_UNHEALTHY
    assert "FAILED" in capsys.readouterr().out


def test_embed_npy_matches_the_provider(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.txt"
    texts = ["the cat sat", "a dog barked", "", "the cat sat"]
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "v.npy"
    assert main(["embed", str(src), "--out", str(out), "-b", "mock", "--opt", "dimension=16"]) == 0
    vectors = np.load(out)
    with vecembed.load_provider("mock", dimension=16) as reference:
        expected = reference.embed_documents([t for t in texts if t])
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, expected)
    assert "embedded 3 texts, dimension 16" in capsys.readouterr().err


def test_embed_queries_jsonl_from_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("what is a cat\nwhere is the dog\n"))
    out = tmp_path / "q.jsonl"
    argv = ["embed", "-", "-o", str(out), "--queries", "-b", "mock", "--opt", "query_prompt='query: '"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["what is a cat", "where is the dog"]
    with vecembed.load_provider("mock", query_prompt="query: ") as reference:
        expected = reference.embed_queries(["what is a cat", "where is the dog"])
        plain = reference.embed_documents(["what is a cat"])
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-6)
    # the prompt really was applied: documents differ from queries
    assert not np.allclose(plain[0], expected[0])


def test_embed_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "hello"}\n', encoding="utf-8")
    assert main(["embed", str(src), "-b", "mock", "--opt", "dimension=8"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == "hello" and len(row["embedding"]) == 8


def test_errors_are_one_line_and_exit_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["embed", str(tmp_path / "missing.txt"), "-b", "mock"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vecembed: error: ") and "no such file or folder" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1

    assert main(["embed", str(tmp_path), "--out", "x.csv", "-b", "mock"]) == 1
    assert "--out must end in .npy or .jsonl" in capsys.readouterr().err

    assert main(["info", "-b", "mock", "--opt", "nonsense=1"]) == 1
    err = capsys.readouterr().err
    assert "backend 'mock' has no option 'nonsense'; its options: dimension" in err and "->" not in err


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "embed", str(tmp_path / "missing.txt"), "-b", "mock"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_unknown_backend_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["info", "--backend", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_bench_never_runs_files_of_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 10 #18: `vecembed bench` could exec benchmarks/run.py from an untrusted current directory.
    from vecembed.cli.models import find_benchmarks

    trap = tmp_path / "benchmarks" / "run.py"
    trap.parent.mkdir()
    trap.write_text("raise SystemExit('executed a file of the working directory')\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    found = find_benchmarks()
    assert found != trap
    # From a source checkout it is the checkout's own harness, next to the package that runs.
    assert found is None or found == Path(vecembed.__file__).resolve().parents[1] / "benchmarks" / "run.py"


def test_bench_outside_a_checkout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("vecembed.cli.models.find_benchmarks", lambda: None)
    assert main(["bench", "--quick"]) == 1
    assert "run `vecembed bench` from a clone" in capsys.readouterr().err


# -- ingest / search on the embedded databases, mock backend -----------------------------------


@pytest.fixture
def docs_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "pets").mkdir(parents=True)
    (folder / "pets" / "cats.txt").write_text("Cats purr and sleep on the sofa all day.\n", encoding="utf-8")
    (folder / "pets" / "dogs.md").write_text("# Dogs\n\nDogs fetch the ball in the park.\n", encoding="utf-8")
    (folder / "markets.txt").write_text("The stock market fell sharply on Monday.\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("db", ["chroma", "qdrant"])
def test_ingest_search_round_trip_mock(db: str, docs_folder: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb" if db == "chroma" else "qdrant_client")
    where = ["--db", db, "--collection", "notes", "--path", str(tmp_path / "store"), "-b", "mock"]
    assert main(["ingest", str(docs_folder), *where, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["documents"], report["written"], report["count"]) == (3, 3, 3)
    assert report["fingerprint"].startswith("ve1-mock-")

    # a re-run is an update, not a duplicate (deterministic ids)
    assert main(["ingest", str(docs_folder), *where, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 3

    assert main(["search", "stock market fell", *where, "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2
    assert hits[0]["id"] == "markets.txt"
    assert hits[0]["text"] == "The stock market fell sharply on Monday."
    assert hits[0]["metadata"]["source"] == "markets.txt"
    assert hits[0]["score"] > hits[1]["score"]
    # the score is the cosine similarity of the mock vectors
    with vecembed.load_provider("mock") as reference:
        q = reference.embed_query("stock market fell")
        d = reference.embed_documents(["The stock market fell sharply on Monday."])[0]
    assert hits[0]["score"] == pytest.approx(float(q @ d), abs=1e-4)

    assert main(["search", "cats sleeping", *where]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(" 1. ") and "[pets/cats.txt]" in out.splitlines()[0]

    # Issue 10 #21: a filter that matches nothing says so, not "the collection is empty".
    assert main(["search", "cats sleeping", *where, "--where", "source=nowhere.txt"]) == 0
    assert capsys.readouterr().out.strip() == "(no document matches --where)"


def test_usage_errors_exit_2_and_search_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 10 #9: -k 0 is a usage error (exit 2, as the README says), and a search of a missing collection
    # must not create the data folder as a side effect.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VECEMBED_DATA", raising=False)
    monkeypatch.delenv("VECEMBED_QDRANT_URL", raising=False)
    with pytest.raises(SystemExit) as usage:
        main(["search", "x", "--db", "qdrant", "-c", "notes", "-k", "0", "-b", "mock"])
    assert usage.value.code == 2 and "expected a positive integer, got 0" in capsys.readouterr().err
    assert main(["search", "x", "--db", "qdrant", "-c", "notes", "-b", "mock"]) == 1
    assert "has no collection 'notes'" in capsys.readouterr().err
    assert not (tmp_path / "vecembed-data").exists()


def test_interrupted_ingest_says_a_rerun_resumes(docs_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 10 #9: after Ctrl-C, "vecembed: interrupted" gave no hint that re-running resumes.
    pytest.importorskip("qdrant_client")

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vecembed.collection.Store.ingest", interrupt)
    code = main(["ingest", str(docs_folder), "--db", "qdrant", "-c", "notes", "--path", str(tmp_path), "-b", "mock"])
    assert code == 130
    assert "run the same command again to finish" in capsys.readouterr().err


@pytest.mark.parametrize("db", ["chroma", "qdrant"])
def test_other_model_is_refused_with_one_line(db: str, docs_folder: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb" if db == "chroma" else "qdrant_client")
    where = ["--db", db, "--collection", "notes", "--path", str(tmp_path / "store")]
    assert main(["ingest", str(docs_folder), *where, "-b", "mock"]) == 0
    capsys.readouterr()
    # another vector space (another seed, same dimension): a model mismatch, not a silent mix
    assert main(["ingest", str(docs_folder), *where, "-b", "mock", "--opt", "seed=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vecembed: error: ") and len(err.strip().splitlines()) == 1
    assert "notes" in err
    assert main(["search", "cats", *where, "-b", "mock", "--opt", "dimension=32"]) == 1
    err = capsys.readouterr().err
    assert "384" in err and ("dimension" in err or "size" in err) and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("db", ["chroma", "qdrant"])
def test_search_missing_collection(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb" if db == "chroma" else "qdrant_client")
    argv = ["search", "x", "--db", db, "-c", "nothere", "--path", str(tmp_path / "s"), "-b", "mock"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "has no collection 'nothere'" in err and f"vecembed ingest INPUT --db {db}" in err


def test_ingest_bad_jsonl_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb")
    src = tmp_path / "d.jsonl"
    src.write_text('{"id": "1", "text": "fine"}\n{"id": "2", "text": null}\n', encoding="utf-8")
    store = tmp_path / "store"
    assert main(["ingest", str(src), "--db", "chroma", "-c", "notes", "--path", str(store), "-b", "mock"]) == 1
    assert "d.jsonl line 2" in capsys.readouterr().err
    assert not (store / "chroma").exists()


def test_path_and_url_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["search", "x", "--db", "qdrant", "-c", "c", "--path", str(tmp_path), "--url", "http://127.0.0.1:1",
            "-b", "mock"]
    assert main(argv) == 1
    assert "either --path" in capsys.readouterr().err


def test_default_location_is_the_data_folder(docs_folder: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("qdrant_client")
    assert main(["ingest", str(docs_folder), "--db", "qdrant", "-c", "notes", "-b", "mock"]) == 0
    assert str(tmp_path / "data" / "qdrant") in capsys.readouterr().out
    assert (tmp_path / "data" / "qdrant").is_dir()


def test_demo_with_the_mock_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb")
    pytest.importorskip("qdrant_client")
    from vecembed.cli.demo import DEMO_QUERIES, load_corpus

    assert len(load_corpus()) == 400
    assert main(["demo", "-b", "mock", "--json", "--path", str(tmp_path / "demo")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["documents"] == 400 and result["backend"] == "mock"
    assert [d["db"] for d in result["databases"]] == ["chroma", "qdrant"]
    for db in result["databases"]:
        assert db["error"] is None and db["health_ok"] is True and db["written"] == 400
        assert list(db["hits"]) == list(DEMO_QUERIES)
        assert all(len(h) == 3 for h in db["hits"].values())
    chroma, qdrant = result["databases"]
    for query in DEMO_QUERIES:
        # the same vectors in both: the same scores (ids may swap where the bag-of-words mock ties)
        assert [h["score"] for h in chroma["hits"][query]] == pytest.approx(
            [h["score"] for h in qdrant["hits"][query]], abs=1e-4)


def test_demo_path_keeps_a_searchable_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb")
    kept = tmp_path / "kept"
    # Chroma here: Qdrant's local mode commits each point to sqlite, slow on a busy disk (the demo test has both).
    assert main(["demo", "-b", "mock", "--db", "chroma", "-q", "a man is playing a guitar", "-k", "2",
                 "--path", str(kept)]) == 0
    out = capsys.readouterr().out
    assert "query: 'a man is playing a guitar'" in out and "== qdrant" not in out
    assert main(["search", "playing a guitar", "--db", "chroma", "-c", "vecembed-demo", "--path", str(kept),
                 "-b", "mock", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 5 and "guitar" in hits[0]["text"].lower()


def test_bench_runs_the_harness_with_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    harness = tmp_path / "benchmarks" / "run.py"
    harness.parent.mkdir()
    record = tmp_path / "argv.json"
    harness.write_text(
        "import json, sys\n"
        "def main(argv):\n"
        f"    open({str(record)!r}, 'w').write(json.dumps(list(argv)))\n"
        "    return 0\n",
        encoding="utf-8",
    )
    monkeypatch.setattr("vecembed.cli.models.find_benchmarks", lambda: harness)
    assert main(["bench", "--quick", "--backends", "onnx", "--json", "out.json"]) == 0
    assert json.loads(record.read_text()) == ["--quick", "--backends", "onnx", "--json", "out.json"]
    # options are passed through only for bench: elsewhere an unknown option is a usage error
    with pytest.raises(SystemExit) as exc:
        main(["info", "-b", "mock", "--backends", "onnx"])
    assert exc.value.code == 2


@pytest.mark.parametrize("db", ["chroma", "qdrant"])
def test_search_where_filters_on_metadata(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb" if db == "chroma" else "qdrant_client")
    src = tmp_path / "docs.jsonl"
    rows = [{"id": "en-cat", "text": "the cat sleeps", "metadata": {"lang": "en", "year": 2024}},
            {"id": "fr-cat", "text": "the cat sleeps le chat dort", "metadata": {"lang": "fr", "year": 2024}},
            {"id": "en-dog", "text": "the dog runs", "metadata": {"lang": "en", "year": 2023}}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    where = ["--db", db, "-c", "docs", "--path", str(tmp_path / "s"), "-b", "mock"]
    assert main(["ingest", str(src), *where]) == 0
    capsys.readouterr()
    assert main(["search", "the cat sleeps", *where, "--json", "--where", "lang=fr"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["fr-cat"]
    assert main(["search", "the cat sleeps", *where, "--json", "--where", "lang=en", "--where", "year=2023"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["en-dog"]
    assert main(["search", "cat", *where, "--where", "oops"]) == 1
    assert "--where expects KEY=VALUE" in capsys.readouterr().err


def test_cli_start_imports_no_heavy_dependency() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom vecembed.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('torch', 'onnxruntime', 'transformers', 'chromadb', 'qdrant_client', 'rich')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    # `vecembed --help`/`--version` stay instant: backends and databases load only for the command that uses them
    assert proc.stdout.strip() == "[]"


def test_a_known_stderr_line_is_dropped_and_the_rest_passes(capfd: pytest.CaptureFixture[str]) -> None:
    # Issue 22 #10: Ray's C++ core worker prints an ERROR line for every Ray Data actor pool on fd 2, where no
    # logging setting reaches it; the CLI drops that one line around a Ray job.
    import os

    from vecembed.cli._common import dropped_stderr_lines
    from vecembed.cli.db import RAY_ACTOR_ARGS_LINE

    ray_line = (b"[2026-12-04 15:26:38,932 E 10608 10608] core_worker.cc:2465: Actor with class name: "
                b"'MapWorker(MapBatches(RecordEmbedder))' and ID: '09a2' has constructor arguments in the object "
                b"store and max_restarts > 0. If the arguments ... See https://github.com/ray-project/ray/issues/53727"
                b" for more details.\n")
    with dropped_stderr_lines(RAY_ACTOR_ARGS_LINE):
        os.write(2, b"before\n" + ray_line[:40])  # C++ may write a line in pieces
        os.write(2, ray_line[40:] + b"progress 1\rprogress 2\r")
        os.write(2, b"core_worker.cc:99: another error stays\nno newline at the end")
    os.write(2, b"|after")  # fd 2 is the original again
    assert capfd.readouterr().err == ("before\nprogress 1\rprogress 2\r"
                                      "core_worker.cc:99: another error stays\nno newline at the end|after")


def test_help_names_every_store() -> None:
    # Issue 22 #10: `vecembed --help` said "Chroma or Qdrant" while four stores ship.
    text = build_parser().format_help()
    assert all(name in text for name in ("Chroma", "Qdrant", "Qdrant Edge", "pgvector")), text
    ingest_help = next(a for a in build_parser()._subparsers._group_actions[0]._choices_actions  # type: ignore[union-attr]
                       if a.dest == "ingest").help
    assert "Chroma or Qdrant" not in (ingest_help or "")
    from vecembed.cli.db import DATABASES

    assert len(DATABASES) >= 4 and all(db in (ingest_help or "") for db in DATABASES), ingest_help


def test_one_off_builds_get_a_status_line_in_the_cli_only(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from vecembed.cli._common import status_lines

    builder = logging.getLogger("vecembed.providers.onnx_build")
    per_call = logging.getLogger("vecembed.pipeline.text")
    with status_lines():
        builder.info("exporting m to ONNX once: about 20 s on 2 CPU cores, then every load reuses /c")
        per_call.warning("3 of 9 texts were longer than 256 tokens and were truncated")  # the CLI reports totals
    builder.info("a library call after the command: no line")
    err = capsys.readouterr().err
    assert err == "vecembed: exporting m to ONNX once: about 20 s on 2 CPU cores, then every load reuses /c\n"
    assert logging.getLogger("vecembed.providers").handlers == []


@pytest.mark.parametrize("db", ["qdrant", "chroma"])
@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ('{"": 1}', "metadata key '' must be a non-empty str"),
        ('{"x": NaN}', "metadata\\['x'\\] is nan: metadata numbers must be finite"),  # one rule: Chroma too
    ],
)
def test_a_bad_record_is_reported_by_its_input_line_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: str,
        metadata: str, message: str) -> None:
    # issue 10 #14: line 701 of 900 was reported as "index 103" (its place in a batch) after 896 were written
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VECEMBED_NO_PROGRESS", "1")
    lines = [json.dumps({"text": f"document {n}", "metadata": {"n": n}}) for n in range(1, 901)]
    lines[700] = '{"text": "document 701", "metadata": ' + metadata + "}"
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["--db", db, "--collection", "docs", "--backend", "mock", "--path", str(tmp_path / "data")]
    assert main(["ingest", "docs.jsonl", *args]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert re.search(f"docs.jsonl line 701: {message}.*nothing was written", err), err
    with pytest.raises(CollectionNotFoundError):  # not even an empty collection
        vecembed.open_store(db, "docs", MockProvider(), path=str(tmp_path / "data"), create=False)


@pytest.mark.parametrize("command", [["search", "bread"], ["ingest", "notes.txt"]])
def test_a_server_only_store_without_a_url_says_so(command: list[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg", reason="pip install 'vecembed[pgvector]'")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VECEMBED_PGVECTOR_URL", raising=False)
    (tmp_path / "notes.txt").write_text("bread\n", encoding="utf-8")
    assert main([*command, "--db", "pgvector", "--collection", "notes", "--backend", "mock"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "pgvector is a database server: give --url or set $VECEMBED_PGVECTOR_URL" in err, err
    assert not (tmp_path / "vecembed-data").exists()  # was: "no collection at vecembed-data/pgvector"
