"""The gguf backend (llama.cpp) against sentence-transformers: F16 parity, Q8_0 quality, identity, threads, stores."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sts_helpers import sts_spearman

pytest_plugins = ["backend_fixtures"]
pytestmark = pytest.mark.integration
pytest.importorskip("llama_cpp", reason="pip install 'vecembed[gguf]'")

import vecembed  # noqa: E402
from vecembed.errors import InvalidInputError, MissingDependencyError, ProviderUnavailableError  # noqa: E402

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
LONG_TEXTS = [
    "Embeddings turn text into vectors so that similar meanings end up close together. " * 12,
    "The quick brown fox jumps over the lazy dog; " * 40,  # well past 256 tokens: truncated
]


#: STS-B dev sentences that q8_0 is compared on in the default run (the whole split is the f16 test's, -m slow):
#: a mean cosine over 300 sentences says what one over 1,000 says, and llama.cpp's spinning
#: threads make each forward slow on a loaded 2-core machine.
SAMPLE = 300


@pytest.fixture(scope="module")
def st_vectors(st_model: Any, sts_sentences: list[str]) -> np.ndarray:
    out: np.ndarray = st_model.encode(sts_sentences + LONG_TEXTS, batch_size=64, normalize_embeddings=True,
                                      convert_to_numpy=True)
    return out


@pytest.fixture(scope="module")
def st_sample(st_model: Any, st_parity_vectors: np.ndarray) -> np.ndarray:
    """sentence-transformers' vectors of the first :data:`SAMPLE` STS-B dev sentences, then of LONG_TEXTS."""
    long: np.ndarray = st_model.encode(LONG_TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    return np.concatenate([st_parity_vectors[:SAMPLE], long])


@pytest.mark.slow  # the whole STS-B dev split (2,909 sentences) through both models
def test_f16_matches_sentence_transformers_on_sts_dev(gguf_provider: Any, st_vectors: np.ndarray,
                                                      sts_sentences: list[str],
                                                      sts_rows: list[tuple[float, str, str]]) -> None:
    """The issue's bar: min cosine >= 0.999 on every STS-B dev sentence, Spearman within 0.002."""
    got = gguf_provider.embed_documents(sts_sentences + LONG_TEXTS)
    assert got.shape == st_vectors.shape and got.dtype == np.float32
    cosine = np.sum(got * st_vectors, axis=1)
    assert cosine.min() >= 0.999, f"min cosine {cosine.min()} at {sts_sentences[int(cosine.argmin())]!r}"
    n = len(sts_sentences)
    ours, theirs = sts_spearman(got[:n], sts_sentences, sts_rows), sts_spearman(st_vectors[:n], sts_sentences, sts_rows)
    assert abs(ours - theirs) <= 0.002, (ours, theirs)


def test_q8_0_stays_close_and_is_another_vector_space(gguf_q8_provider: Any, gguf_provider: Any,
                                                      st_sample: np.ndarray, sts_sentences: list[str]) -> None:
    texts = sts_sentences[:SAMPLE]  # the benchmark measures all of them
    got = gguf_q8_provider.embed_documents(texts)
    cosine = np.sum(got * st_sample[: len(texts)], axis=1)
    assert cosine.mean() >= 0.99, cosine.mean()
    assert gguf_q8_provider.info.quantization == "q8_0" and gguf_provider.info.quantization == "f16"
    assert gguf_q8_provider.info.fingerprint != gguf_provider.info.fingerprint


def test_the_gguf_space_is_not_the_onnx_one(gguf_provider: Any, onnx_provider: Any) -> None:
    """Another file, another fingerprint: a store written by onnx refuses gguf until someone proves them equal."""
    assert gguf_provider.info.fingerprint != onnx_provider.info.fingerprint
    assert gguf_provider.info.backend == "gguf" and gguf_provider.info.dimension == 384


def test_truncation_keeps_the_end_token_and_is_counted(gguf_provider: Any, st_sample: np.ndarray) -> None:
    result = gguf_provider.embed_documents_counted(["short one", *LONG_TEXTS])
    assert result.truncated == 1  # the second long text only (the first is ~180 tokens)
    cosine = np.sum(result.vectors[1:] * st_sample[-len(LONG_TEXTS):], axis=1)
    assert cosine.min() >= 0.999  # cut as sentence-transformers cuts: [CLS] + 254 tokens + [SEP]
    ids = gguf_provider.pipeline.tokenize([LONG_TEXTS[1]]).ids[0]
    assert len(ids) == 256 and ids[0] == 101 and ids[-1] == 102


def test_the_converted_file_loaded_by_path_is_the_same_model(gguf_provider: Any, tmp_path: Path) -> None:
    copy = tmp_path / "minilm-f16.gguf"
    copy.write_bytes(Path(gguf_provider.model_file).read_bytes())
    with vecembed.load_provider("gguf", model=copy) as direct:
        assert direct.info.fingerprint == gguf_provider.info.fingerprint
        assert direct.info.max_tokens == 256 and direct.info.normalized and direct.info.pooling == "mean"
        texts = ["A man is playing a guitar.", "Zwei Hunde spielen im Schnee — ¿qué tal? 東京", ""]
        np.testing.assert_allclose(direct.embed_documents(texts), gguf_provider.embed_documents(texts), atol=1e-6)


def test_overrides_change_the_fingerprint_and_the_vectors(gguf_provider: Any) -> None:
    path = gguf_provider.model_file
    with vecembed.load_provider("gguf", model=path, pooling="cls", normalize=False, max_tokens=128,
                                query_prompt="query: ") as other:
        assert other.info.pooling == "cls" and not other.info.normalized and other.info.max_tokens == 128
        assert other.info.fingerprint != gguf_provider.info.fingerprint
        v = other.embed_documents(["A man is playing a guitar."])[0]
        assert abs(float(np.linalg.norm(v)) - 1.0) > 1e-3  # not normalised
        q = other.embed_queries(["cats"])[0]
        np.testing.assert_allclose(q, other.embed_documents(["query: cats"])[0], atol=1e-6)
    with pytest.raises(InvalidInputError, match=r"llama\.cpp pools"):
        vecembed.load_provider("gguf", model=path, pooling="max")
    with pytest.raises(InvalidInputError, match="context length 512"):
        vecembed.load_provider("gguf", model=path, max_tokens=1024)
    for bad in ({"batch_size": 0}, {"n_threads": -1}, {"contexts": True}, {"quantize": "q4_0"}):
        with pytest.raises(InvalidInputError, match=next(iter(bad))):
            vecembed.load_provider("gguf", model=path, **bad)


def test_threads_share_the_provider_safely(gguf_provider: Any, sts_sentences: list[str]) -> None:
    """One context: calls from four threads are serialised and each gets its own texts' vectors."""
    chunks = [sts_sentences[i * 40:(i + 1) * 40] for i in range(4)]
    want = [gguf_provider.embed_documents(c) for c in chunks]
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = gguf_provider.embed_documents(chunks[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        np.testing.assert_allclose(got[i], want[i], atol=1e-6)


def test_a_pool_of_contexts_runs_forwards_at_once(gguf_provider: Any, sts_sentences: list[str]) -> None:
    with vecembed.load_provider("gguf", model=gguf_provider.model_file, contexts=2, n_threads=1) as pooled:
        assert pooled.info.extra["contexts"] == 2
        inside = [0]
        most = [0]
        lock = threading.Lock()
        real = pooled._decode

        def counting(context: Any, batch: Any) -> Any:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            try:
                return real(context, batch)
            finally:
                with lock:
                    inside[0] -= 1

        pooled._decode = counting
        texts = sts_sentences[:200]
        results: list[np.ndarray] = []
        threads = [threading.Thread(target=lambda: results.append(pooled.embed_documents(texts))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 4 and most[0] == 2  # two contexts: two forwards at once, never more
        want = gguf_provider.embed_documents(texts)
        for r in results:
            np.testing.assert_allclose(r, want, atol=1e-5)


def test_health_and_close(gguf_provider: Any) -> None:
    provider = vecembed.load_provider("gguf", model=gguf_provider.model_file)
    report = provider.health_check()
    assert report.ok, report.detail
    provider.close()
    provider.close()  # twice is fine
    assert not provider.health_check().ok
    with pytest.raises(ProviderUnavailableError):
        provider.embed_documents(["x"])


def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(MissingDependencyError, match=r"vecembed\[gguf\]"):
        vecembed.load_provider("gguf")


def test_chroma_function_and_qdrant_store_use_the_gguf_provider(gguf_provider: Any, tmp_path: Path) -> None:
    """The adapters take it as any provider: identity recorded, search by meaning, and Chroma rebuilds it."""
    pytest.importorskip("chromadb")
    pytest.importorskip("qdrant_client")
    import chromadb
    import vecembed_chroma

    docs = ["The cat sits on the mat.", "A man is playing a guitar.", "Stocks fell sharply on Monday."]
    with vecembed.open_store("qdrant", "gguf-docs", gguf_provider) as store:
        assert store.ingest(docs).written == 3
        assert store.search("a musician with an instrument", k=1)[0].text == docs[1]
        assert store.ingest(docs).skipped == 3
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    ef = vecembed_chroma.ChromaEmbeddingFunction(gguf_provider)
    assert ef.get_config()["options"] == {"model": MODEL_ID, "quantize": "f16"}
    col = client.create_collection("gguf-docs", embedding_function=ef)
    col.add(ids=["0", "1", "2"], documents=docs)
    rebuilt = vecembed_chroma.ChromaEmbeddingFunction.build_from_config(ef.get_config())
    assert rebuilt.provider.info.fingerprint == gguf_provider.info.fingerprint
    again = client.get_collection("gguf-docs", embedding_function=rebuilt)
    assert again.query(query_texts=["share prices dropped"], n_results=1)["ids"] == [["2"]]


# -- a decoder model: causal attention, last-token pooling, an end token added by the vocabulary -----------


def write_tiny_llama(path: Path, seed: int = 0) -> None:
    """A 2-layer llama-architecture embedding model with random weights (last-token pooling, BOS and EOS added).

    No decoder embedding model (Qwen3-Embedding and the like) can be downloaded here; this one takes the same
    code path in llama.cpp (causal attention, a KV cache shared by the batch's sequences, cleared per batch).
    """
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(seed)
    n_embd, n_layer, n_head, n_ff = 64, 2, 4, 128
    words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "a", "big", "red"]
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256)), *("\u2581" + w for w in words), *words]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, *[gguf.TokenType.BYTE] * 256,
             *[gguf.TokenType.NORMAL] * (2 * len(words))]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-embedding")
    writer.add_context_length(128)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_pooling_type(gguf.PoolingType.LAST)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 3 + [-1000.0] * 256 + [-1.0] * len(words) + [-2.0] * len(words))
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(len(tokens), n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", weight(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_decoder_model_batches_like_it_runs_alone(tmp_path: Path) -> None:
    """Causal attention with many sequences in one batch: each text's vector is the one it gets alone.

    llama.cpp's flash attention (on by default, 1.8x faster here) makes a vector depend on its batch at the
    1e-4 level (measured: 5.7e-4 here, cosine 0.9999997 for MiniLM); without it batching is exact.
    """
    path = tmp_path / "tiny-llama.gguf"
    write_tiny_llama(path)
    texts = ["the cat sat on the mat", "a big red dog ran", "the dog", "cat", "", "the big red cat sat on a mat"]
    with vecembed.load_provider("gguf", model=path) as provider:
        info = provider.info
        assert info.pooling == "last" and info.extra["architecture"] == "llama" and info.dimension == 64
        assert info.max_tokens == 128 and info.normalized and info.quantization is None
        assert provider.tokenizer.prefix == [1] and provider.tokenizer.suffix == [2]  # BOS ... EOS
        batched = provider.embed_documents(texts)
        alone = np.stack([provider.embed_documents([t])[0] for t in texts])
        assert (np.sum(batched * alone, axis=1) >= 0.99999).all()
        np.testing.assert_allclose(batched, alone, atol=2e-3)
        again = provider.embed_documents(texts[::-1])[::-1]
        np.testing.assert_allclose(again, batched, atol=2e-3)
        assert len({v.tobytes() for v in batched}) == len(texts)  # every text its own vector
    with vecembed.load_provider("gguf", model=path, max_tokens=8, pooling="mean") as short:
        result = short.embed_documents_counted(["the cat sat on the mat the dog ran"])
        ids = short.pipeline.tokenize(["the cat sat on the mat the dog ran"]).ids[0]
        assert result.truncated == 1 and len(ids) == 8 and ids[0] == 1 and ids[-1] == 2
        assert short.info.fingerprint != info.fingerprint


def test_a_quantised_file_on_an_amx_build_is_refused_not_crashed(gguf_q8_provider: Any, gguf_provider: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-cpp-python 0.3.36 built with AMX int8 segfaults on a Q8_0 embedding: refuse it with the rebuild."""
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: b"CPU : AVX2 = 1 | AMX_INT8 = 1 | ")
    with pytest.raises(ProviderUnavailableError, match=r"q8_0.*built with AMX int8.*-DGGML_AMX_INT8=OFF"):
        vecembed.load_provider("gguf", model=str(gguf_q8_provider.model_file))
    # f16 takes no AMX int8 path: it still loads there
    with vecembed.load_provider("gguf", model=str(gguf_provider.model_file)) as f16:
        assert f16.embed_query("a guitar").shape == (384,)
