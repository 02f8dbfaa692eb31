"""The GGUF converter and file location, without llama.cpp: a tiny BERT written in numpy, read back with gguf."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="pip install 'vecembed[gguf]'")
safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="pip install 'vecembed[gguf]'")

from vecembed import artifact_cache as cache  # noqa: E402
from vecembed.errors import InvalidInputError, ModelLoadError, ModelNotFoundError  # noqa: E402
from vecembed.model_config import load_model_config  # noqa: E402
from vecembed.providers import gguf_convert  # noqa: E402
from vecembed.providers.gguf import locate_gguf  # noqa: E402
from vecembed.resolve import find_hub_file  # noqa: E402

HIDDEN, LAYERS, HEADS, FF = 64, 2, 2, 128
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "on", "mat", ".", "a", "dog"]


def write_tiny_bert(folder: Path, *, seed: int = 0, model_type: str = "bert") -> dict[str, np.ndarray]:
    """A BERT sentence-transformer folder (config, safetensors, tokenizer.json, ST config) from random weights."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.05

    weights = {
        "embeddings.word_embeddings.weight": r(len(VOCAB), HIDDEN),
        "embeddings.position_embeddings.weight": r(32, HIDDEN),
        "embeddings.token_type_embeddings.weight": r(2, HIDDEN),
        "embeddings.LayerNorm.weight": np.ones(HIDDEN, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(HIDDEN, np.float32),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            weights[p + f"attention.self.{name}.weight"] = r(HIDDEN, HIDDEN)
            weights[p + f"attention.self.{name}.bias"] = r(HIDDEN)
        weights |= {
            p + "attention.output.dense.weight": r(HIDDEN, HIDDEN), p + "attention.output.dense.bias": r(HIDDEN),
            p + "attention.output.LayerNorm.weight": np.ones(HIDDEN, np.float32),
            p + "attention.output.LayerNorm.bias": np.zeros(HIDDEN, np.float32),
            p + "intermediate.dense.weight": r(FF, HIDDEN), p + "intermediate.dense.bias": r(FF),
            p + "output.dense.weight": r(HIDDEN, FF), p + "output.dense.bias": r(HIDDEN),
            p + "output.LayerNorm.weight": np.ones(HIDDEN, np.float32),
            p + "output.LayerNorm.bias": np.zeros(HIDDEN, np.float32),
        }
    safetensors_numpy.save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": model_type, "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": FF,
        "max_position_embeddings": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "vocab_size": len(VOCAB),
    }))
    tok = Tokenizer(WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                                   ("[SEP]", 3)])
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "query: "}}))
    return weights


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, np.ndarray]]:
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "tiny-bert"
    return folder, write_tiny_bert(folder)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    reader = gguf.GGUFReader(str(path))
    fields = {}
    for name, field in reader.fields.items():
        if name.startswith("tokenizer.ggml.token") and name != "tokenizer.ggml.token_type_count":
            continue
        value = field.contents()
        fields[name] = value
    tensors = {t.name: t for t in reader.tensors}
    return fields, tensors


@pytest.mark.parametrize("quantize", ["f32", "f16", "q8_0"])
def test_the_file_holds_what_llama_cpp_reads_of_a_bert(tiny: tuple[Path, dict[str, np.ndarray]],
                                                      quantize: str) -> None:
    folder, weights = tiny
    config = load_model_config(folder)
    path = gguf_convert.ensure_gguf(config, quantize, name="tiny")
    fields, tensors = _read(path)
    assert fields["general.architecture"] == "bert"
    assert fields["bert.embedding_length"] == HIDDEN and fields["bert.block_count"] == LAYERS
    assert fields["bert.attention.head_count"] == HEADS and fields["bert.feed_forward_length"] == FF
    assert fields["bert.attention.causal"] is False
    assert fields["bert.pooling_type"] == 2  # CLS, from 1_Pooling/config.json
    assert fields["tokenizer.ggml.model"] == "bert"
    assert fields["tokenizer.ggml.bos_token_id"] == 2 and fields["tokenizer.ggml.seperator_token_id"] == 3
    assert fields["tokenizer.ggml.normalizer.lowercase"] is True
    # what sentence-transformers' files say, for the provider
    assert fields[gguf_convert.META_NORMALIZE] is True and fields[gguf_convert.META_MAX_SEQ_LENGTH] == 24
    assert fields[gguf_convert.META_QUERY_PROMPT] == "query: "
    assert gguf_convert.META_DOCUMENT_PROMPT not in fields  # gguf writes no empty string
    # WPM's phantom-space vocabulary: word starts get "▁", "##" continuations lose it, specials stay
    reader = gguf.GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert tokens[:3] == ["[PAD]", "[UNK]", "[CLS]"] and tokens[6] == "\u2581cat" and tokens[8] == "s"
    want = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
            "q8_0": gguf.GGMLQuantizationType.Q8_0}[quantize]
    assert tensors["blk.0.ffn_up.weight"].tensor_type == want
    assert tensors["token_embd.weight"].tensor_type == want
    for always_f32 in ("position_embd.weight", "token_types.weight", "blk.1.attn_output_norm.weight",
                       "blk.0.attn_qkv.bias"):
        assert tensors[always_f32].tensor_type == gguf.GGMLQuantizationType.F32, always_f32
    # Q, K and V fused in that order; the values survive the quantisation
    fused = gguf.quants.dequantize(tensors["blk.1.attn_qkv.weight"].data, tensors["blk.1.attn_qkv.weight"].tensor_type)
    expect = np.concatenate([weights[f"encoder.layer.1.attention.self.{n}.weight"] for n in ("query", "key", "value")])
    assert fused.shape == expect.shape == (3 * HIDDEN, HIDDEN)
    tolerance = {"f32": 0.0, "f16": 1e-4, "q8_0": 2e-3}[quantize]
    assert np.abs(fused - expect).max() <= tolerance
    assert cache.is_verified(path) is not None


def test_conversion_is_cached_and_a_damaged_file_is_rebuilt(tiny: tuple[Path, dict[str, np.ndarray]],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = tiny
    config = load_model_config(folder)
    calls: list[str] = []
    real = gguf_convert.convert_to_gguf

    def counting(*args: Any, **kwargs: Any) -> None:
        calls.append(args[2])
        real(*args, **kwargs)

    monkeypatch.setattr(gguf_convert, "convert_to_gguf", counting)
    first = gguf_convert.ensure_gguf(config, "f16", name="tiny")
    assert gguf_convert.ensure_gguf(config, "f16", name="tiny") == first and calls == ["f16"]
    assert gguf_convert.ensure_gguf(config, "q8_0", name="tiny") != first and calls == ["f16", "q8_0"]
    with open(first, "r+b") as fh:  # damage: the checksum no longer matches
        fh.seek(100)
        fh.write(b"\xff" * 8)
    assert gguf_convert.ensure_gguf(config, "f16", name="tiny") == first and calls == ["f16", "q8_0", "f16"]
    assert cache.is_verified(first) is not None


def test_another_model_config_is_another_file(tiny: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, _ = tiny
    plain = gguf_convert.gguf_cache_path(load_model_config(folder), "f16")
    assert gguf_convert.gguf_cache_path(load_model_config(folder, pooling="mean"), "f16") != plain
    assert gguf_convert.gguf_cache_path(load_model_config(folder, query_prompt="q: "), "f16") != plain


def test_non_bert_models_and_unknown_types_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path / "cache"))
    write_tiny_bert(tmp_path / "m", model_type="roberta")
    config = load_model_config(tmp_path / "m")
    config = type(config)(**{**config.__dict__, "architectures": ("RobertaModel",)})
    with pytest.raises(ModelLoadError, match=r"convert_hf_to_gguf\.py"):
        gguf_convert.ensure_gguf(config, "f16", name="m")
    with pytest.raises(InvalidInputError, match="q4_0"):
        gguf_convert.ensure_gguf(load_model_config(tmp_path / "m"), "q4_0", name="m")
    with pytest.raises(ModelLoadError, match="max"):
        gguf_convert.ensure_gguf(load_model_config(tmp_path / "m", pooling="max"), "f16", name="m")
    assert not list((tmp_path / "cache").rglob("*.gguf"))


# -- where the GGUF file comes from ------------------------------------------------------------------


def test_locate_a_file_a_folder_and_a_conversion(tiny: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    folder, _ = tiny
    converted = locate_gguf(folder, filename=None, quantize="q8_0", allow_download=False)
    assert converted.source == "converted" and converted.path.name == "model-q8_0.gguf"
    assert locate_gguf(folder, filename=None, quantize=None, allow_download=False).path.name == "model-f16.gguf"
    direct = locate_gguf(converted.path, filename=None, quantize=None, allow_download=False)
    assert direct.path == converted.path and direct.source == "file"
    with pytest.raises(InvalidInputError, match="GGUF file already"):
        locate_gguf(converted.path, filename=None, quantize="f16", allow_download=False)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    for name in ("a-f16.gguf", "a-q8_0.gguf"):
        (shelf / name).write_bytes(converted.path.read_bytes())
    with pytest.raises(InvalidInputError, match="filename="):
        locate_gguf(shelf, filename=None, quantize=None, allow_download=False)
    assert locate_gguf(shelf, filename="a-q8_0.gguf", quantize=None, allow_download=False).path.name == "a-q8_0.gguf"
    with pytest.raises(ModelNotFoundError, match=r"a-q4\.gguf"):
        locate_gguf(shelf, filename="a-q4.gguf", quantize=None, allow_download=False)
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        locate_gguf(not_gguf, filename=None, quantize=None, allow_download=False)


def test_a_hub_file_comes_from_the_local_cache_then_the_download(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub path on local files: a Hugging Face cache laid out as the hub lays it, and a stand-in download."""
    hub = tmp_path / "hub"
    snap = hub / "models--org--emb-GGUF" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (hub / "models--org--emb-GGUF" / "refs").mkdir()
    (hub / "models--org--emb-GGUF" / "refs" / "main").write_text("abc123")
    (snap / "emb-Q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 16)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    found = find_hub_file("org/emb-GGUF", "emb-Q8_0.gguf", allow_download=False)
    assert found.path == (snap / "emb-Q8_0.gguf").resolve() and found.source == "hf-cache"
    with pytest.raises(ModelNotFoundError) as err:
        find_hub_file("org/emb-GGUF", "emb-F16.gguf", allow_download=False)
    assert "no emb-F16.gguf" in str(err.value) and "allow_download=False" in str(err.value)
    hf = pytest.importorskip("huggingface_hub")
    fetched: list[tuple[str, str]] = []

    def fake_download(repo_id: str, filename: str, **_: Any) -> str:
        fetched.append((repo_id, filename))
        out = tmp_path / "downloaded" / filename
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(b"GGUF" + b"\0" * 16)
        return str(out)

    monkeypatch.setattr(hf, "hf_hub_download", fake_download)
    monkeypatch.setenv("VECEMBED_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="offline"):
        find_hub_file("org/emb-GGUF", "emb-F16.gguf")
    assert fetched == []
    got = find_hub_file("org/emb-GGUF", "emb-F16.gguf", allow_download=True)
    assert got.source == "download" and fetched == [("org/emb-GGUF", "emb-F16.gguf")]


def test_filename_needs_a_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="give model="):
        locate_gguf(None, filename="x.gguf", quantize=None, allow_download=False)


def test_conversion_needs_neither_torch_nor_transformers(tiny: tuple[Path, dict[str, np.ndarray]],
                                                         tmp_path: Path) -> None:
    """In a process where importing torch or transformers fails, the conversion still writes its file."""
    import os
    import subprocess
    import sys

    folder, _ = tiny
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\nsys.modules['transformers'] = None\n"
        "from vecembed.model_config import load_model_config\n"
        "from vecembed.providers.gguf_convert import ensure_gguf\n"
        f"print(ensure_gguf(load_model_config(__import__('pathlib').Path({str(folder)!r})), 'q8_0', name='tiny'))\n"
    )
    env = {**os.environ, "VECEMBED_CACHE": str(tmp_path / "fresh-cache")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    written = Path(proc.stdout.strip())
    assert written.is_relative_to(tmp_path / "fresh-cache") and written.read_bytes()[:4] == b"GGUF"


def test_a_transformer_folder_holding_a_gguf_file(tiny: tuple[Path, dict[str, np.ndarray]]) -> None:
    """Its GGUF file is used as it is; quantize= converts the transformer instead; filename= must exist."""
    folder, _ = tiny
    converted = locate_gguf(folder, filename=None, quantize="q8_0", allow_download=False)
    with pytest.raises(ModelNotFoundError, match="none there"):
        locate_gguf(folder, filename="x.gguf", quantize=None, allow_download=False)
    (folder / "shipped.gguf").write_bytes(converted.path.read_bytes())
    shipped = locate_gguf(folder, filename=None, quantize=None, allow_download=False)
    assert shipped.path == (folder / "shipped.gguf").resolve() and shipped.source == "file"
    again = locate_gguf(folder, filename=None, quantize="f16", allow_download=False)
    assert again.source == "converted" and again.path.name == "model-f16.gguf"
    assert again.options == {"model": str(folder.resolve()), "quantize": "f16"}
