"""The docs' CLI commands that no other test runs, verbatim, in subprocesses; and a check that README.md and the
docs site show no ``vecembed`` command that is not in :data:`cli_helpers.README_COMMANDS` (so none goes untested).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import README_COMMANDS, readme_args, run_cli
from doc_pages import code_blocks

pytest_plugins = ["backend_fixtures"]  # vecembed_cache: a private ONNX cache for the session

# Exports go to the session's private cache (VECEMBED_CACHE, inherited by subprocesses), not the user's.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("vecembed_cache")]

ROOT = Path(__file__).resolve().parents[2]


def test_every_vecembed_command_in_the_docs_is_tested() -> None:
    blocks = code_blocks("bash", "sh", "console")
    assert any(block.page == "README.md" for block in blocks)
    shown = {(line.strip(), block.where) for block in blocks for line in block.code.splitlines()
             if line.strip().startswith("vecembed ")}
    # a trailing comment (`vecembed demo   # ...`) is documentation, not part of the command
    untested = {f"{where}: {command}" for line, where in shown
                if (command := re.sub(r"\s+#.*$", "", line)) not in README_COMMANDS.values()}
    assert not untested, f"the docs show vecembed commands no test runs; add them to README_COMMANDS: {untested}"


def test_info(tmp_path: Path, minilm_path: Path) -> None:
    out = run_cli(*readme_args("info"), cwd=tmp_path).stdout
    assert re.search(r"^model\s+sentence-transformers/all-MiniLM-L6-v2$", out, re.M)
    assert re.search(r"^dimension\s+384$", out, re.M)
    assert re.search(r"^health\s+ok in ", out, re.M)

    int8 = json.loads(run_cli(*readme_args("info_int8"), cwd=tmp_path).stdout)
    assert int8["info"]["quantization"] == "int8"
    assert 0.9 < int8["info"]["agreement"] < 1.0
    assert int8["health"]["ok"] is True


def test_embed_matches_sentence_transformers(tmp_path: Path, st_model: Any) -> None:
    texts = ["A man is playing a guitar.", "The stock market fell on Monday.", "", "Dogs run in the park."]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    proc = run_cli(*readme_args("embed"), cwd=tmp_path)
    assert "embedded 3 texts, dimension 384" in proc.stderr
    vectors = np.load(tmp_path / "vectors.npy")
    expected = st_model.encode([t for t in texts if t], normalize_embeddings=True, convert_to_numpy=True)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    cosine = np.sum(vectors * expected, axis=1)
    assert cosine.min() > 0.9999


def test_ingest_jsonl_and_search(tmp_path: Path, minilm_path: Path) -> None:
    pytest.importorskip("qdrant_client")
    rows = [
        {"id": "doc-1", "text": "Our cat sleeps on the warm windowsill.", "metadata": {"lang": "en", "year": 2024}},
        {"id": "doc-2", "text": "The train to Rome leaves at nine.", "metadata": {"lang": "en"}},
        {"id": "doc-3", "text": "Le chat dort sur le rebord de la fenêtre.", "metadata": {"lang": "fr"}},
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = run_cli(*readme_args("ingest_jsonl"), cwd=tmp_path).stdout
    assert "ingested 3 documents into 'docs': 3 written, 0 unchanged" in out
    hit = run_cli(*readme_args("search_jsonl"), cwd=tmp_path).stdout.rstrip().splitlines()
    assert len(hit) == 1
    assert hit[0].startswith(" 1. ") and "[doc-1]" in hit[0] and '"year": 2024' in hit[0]


def test_alias_commands(tmp_path: Path, minilm_path: Path) -> None:
    pytest.importorskip("qdrant_client")
    rows = [{"id": "faq-1", "text": "Hold the power button for ten seconds to reset the router."},
            {"id": "faq-2", "text": "The cat sleeps on the sofa."}]
    (tmp_path / "v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run_cli("ingest", "v1.jsonl", "--db", "qdrant", "--collection", "docs-v1", cwd=tmp_path)
    assert "alias 'docs' -> collection 'docs-v1'" in run_cli(*readme_args("alias_set"), cwd=tmp_path).stdout
    assert run_cli(*readme_args("alias_list"), cwd=tmp_path).stdout.splitlines() == ["docs -> docs-v1"]
    # through the alias, with the provider docs-v1 records (no --backend/--model given)
    hits = run_cli(*readme_args("alias_search"), cwd=tmp_path).stdout.splitlines()
    assert "[faq-1]" in hits[0]
    assert "dropped" in run_cli(*readme_args("alias_drop"), cwd=tmp_path).stdout
    again = run_cli(*readme_args("alias_drop"), cwd=tmp_path, check=False)
    assert again.returncode == 1 and "has no alias 'docs'" in again.stderr


def test_export(tmp_path: Path, minilm_path: Path, vecembed_cache: Path) -> None:
    proc = run_cli(*readme_args("export"), cwd=tmp_path)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    fp32, int8 = (Path(line.rsplit(": ", 1)[1]) for line in lines)
    assert fp32.name == "model.onnx" and int8.name == "model-int8-v2.onnx"
    assert fp32.is_file() and int8.is_file() and fp32.is_relative_to(vecembed_cache)
    assert "(int8, agreement 0.9" in lines[1]


def test_export_gguf(tmp_path: Path, minilm_path: Path, vecembed_cache: Path) -> None:
    """The README's GGUF export writes the file the gguf backend converts to; `info` runs it on llama.cpp."""
    pytest.importorskip("gguf", reason="pip install 'vecembed[gguf]'")
    proc = run_cli(*readme_args("export_gguf"), cwd=tmp_path)
    written = tmp_path / "all-MiniLM-L6-v2-q8_0.gguf"
    assert proc.stdout.strip() == str(written) and written.read_bytes()[:4] == b"GGUF"
    assert "vecembed info --backend gguf --model" in proc.stderr
    again = run_cli(*readme_args("export_gguf"), cwd=tmp_path, check=False)
    assert again.returncode != 0 and "exists" in again.stderr  # never overwrites a file
    pytest.importorskip("llama_cpp", reason="pip install 'vecembed[gguf]'")
    import vecembed

    info = json.loads(run_cli("info", "--backend", "gguf", "--model", str(written), "--json",
                              cwd=tmp_path).stdout)["info"]
    with vecembed.load_provider("gguf", quantize="q8_0") as converted:
        assert info["fingerprint"] == converted.info.fingerprint and info["quantization"] == "q8_0"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random one-layer BERT with a 30-word vocabulary: distilling it takes a second, not minutes."""
    transformers = pytest.importorskip("transformers", reason="distillation needs vecembed[static]")
    pytest.importorskip("model2vec.distill", reason="pip install 'vecembed[static]'")
    torch = pytest.importorskip("torch")
    from tokenizers.implementations import BertWordPieceTokenizer

    path = tmp_path_factory.mktemp("tiny-bert")
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "park", "train", "rome", "warm", "##s", "##ing"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=True).save(str(path / "tokenizer.json"))
    specials = {f"{k}_token": f"[{k.upper()}]" for k in ("unk", "pad", "cls", "sep", "mask")}
    transformers.PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), **specials).save_pretrained(
        str(path))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).eval().save_pretrained(str(path))
    return path


def test_distill(tmp_path: Path, tiny_bert: Path, vecembed_cache: Path) -> None:
    # The README's `vecembed distill --dim 256` distils all-MiniLM-L6-v2 (minutes on this machine, then
    # cached); here the same command runs on a tiny transformer, with a dimension below its hidden size.
    args = readme_args("distill")
    assert args == ["distill", "--dim", "256"]
    proc = run_cli("distill", "--model", str(tiny_bert), "--dim", "8", cwd=tmp_path)
    folder = Path(proc.stdout.strip())
    assert folder.is_relative_to(vecembed_cache) and (folder / "model.safetensors").is_file()
    # Piped (not a terminal): no bar from model2vec ("Encoding tokens"), no tqdm rate, no transformers report.
    for noise in ("Encoding tokens", "it/s", "%|", "LOAD REPORT"):
        assert noise not in proc.stderr, proc.stderr
    info = json.loads(run_cli("info", "--backend", "static", "--model", str(folder), "--json", cwd=tmp_path).stdout)
    assert info["info"]["dimension"] == 8 and info["health"]["ok"] is True


def test_bench_reaches_the_harness(tmp_path: Path) -> None:
    if not (ROOT / "benchmarks" / "run.py").is_file():
        pytest.skip("benchmarks/run.py (the harness) is not in this checkout yet")
    # The README's `vecembed bench --quick` runs for minutes on this shared 2-core machine (it times
    # sentence-transformers too), too long for a test; what the CLI adds — finding benchmarks/run.py from
    # any working directory and handing it its options — is checked with the harness's own --help.
    args = [*readme_args("bench"), "--help"]
    proc = run_cli(*args, cwd=tmp_path)
    assert "--backends" in proc.stdout and "--quick" in proc.stdout
