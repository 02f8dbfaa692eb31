"""Convert a BERT sentence-transformer to a GGUF file for llama.cpp, once, with the ``gguf`` package.

What llama.cpp's ``convert_hf_to_gguf.py`` does for a BERT, in one small module
that needs neither torch nor transformers: the weights are read with
``safetensors`` (numpy), the vocabulary from ``tokenizer.json`` / ``vocab.txt``,
and written with :class:`gguf.GGUFWriter` under llama.cpp's ``bert``
architecture, in F32, F16 or Q8_0 (the same per-tensor rules as llama.cpp's
converter: norms, biases, position and token-type embeddings stay F32; Q/K/V are
fused into one ``attn_qkv`` matrix, which llama.cpp multiplies in one go).

Beside llama.cpp's own keys the file carries what sentence-transformers keeps in
its config files and llama.cpp has no key for: normalisation, max_seq_length and
the query/document prompts (``vecembed.*`` keys, ignored by llama.cpp, read by
:class:`~vecembed.providers.gguf.GgufProvider`).

Converted files are cached like the ONNX export (:func:`ensure_gguf`): keyed by
the weights' digest, the model's config and the converter's version, written
atomically, checked by a ``.sha256`` sidecar and rebuilt when damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed import artifact_cache as cache
from vecembed._deps import require
from vecembed.errors import InvalidInputError, ModelLoadError
from vecembed.model_config import ModelConfig
from vecembed.resolve import weights_digest

__all__ = [
    "CONVERTER_VERSION",
    "GGUF_TYPES",
    "META_DOCUMENT_PROMPT",
    "META_MAX_SEQ_LENGTH",
    "META_NORMALIZE",
    "META_QUERY_PROMPT",
    "META_SOURCE",
    "convert_to_gguf",
    "ensure_gguf",
    "gguf_cache_path",
]

log = logging.getLogger(__name__)

#: Bump when the written file changes (tensors, keys): old cache entries are then ignored.
CONVERTER_VERSION = 1
#: ``quantize=`` values a transformer can be converted to (llama.cpp's own names, lower case).
GGUF_TYPES = ("f32", "f16", "q8_0")
#: Architectures (``config.json``) this converter writes as llama.cpp's ``bert``.
BERT_ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification")

META_NORMALIZE = "vecembed.normalize"
META_MAX_SEQ_LENGTH = "vecembed.max_seq_length"
META_QUERY_PROMPT = "vecembed.query_prompt"
META_DOCUMENT_PROMPT = "vecembed.document_prompt"
META_SOURCE = "vecembed.source"

_POOLING_TYPES = {"mean": 1, "cls": 2, "last": 3}  # llama.cpp's enum llama_pooling_type


def _check_convertible(config: ModelConfig) -> None:
    archs = set(config.architectures)
    if config.model_type != "bert" and not archs & set(BERT_ARCHITECTURES):
        raise ModelLoadError(
            f"{config.transformer_path}: vecembed converts BERT models to GGUF; this one is "
            f"{config.model_type or 'unknown'!r} ({', '.join(config.architectures) or 'no architectures'}). "
            "Convert it with llama.cpp's convert_hf_to_gguf.py and pass the .gguf file as model=",
            path=str(config.transformer_path),
        )
    if config.pooling not in _POOLING_TYPES:
        raise ModelLoadError(
            f"{config.path}: {config.pooling!r} pooling has no llama.cpp equivalent (it pools "
            f"{', '.join(_POOLING_TYPES)}); pass pooling= one of those to convert it",
            path=str(config.path),
        )


def gguf_cache_path(config: ModelConfig, quantize: str) -> Path:
    """Where the converted file of ``config`` in ``quantize`` lives in vecembed's cache."""
    key = {
        "weights": weights_digest(config.transformer_path),
        "converter": CONVERTER_VERSION,
        "pooling": config.pooling,
        "normalize": config.normalize,
        "max_seq_length": config.max_seq_length,
        "prompts": [config.query_prompt, config.document_prompt],
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache.entry_dir("gguf", digest) / f"model-{quantize}.gguf"


def ensure_gguf(config: ModelConfig, quantize: str, *, name: str) -> Path:
    """The cached GGUF file of ``config`` in ``quantize``, converted now if absent or damaged."""
    if quantize not in GGUF_TYPES:
        raise InvalidInputError(f"quantize must be one of {', '.join(GGUF_TYPES)} for a GGUF conversion, "
                                f"got {quantize!r}")
    _check_convertible(config)
    dest = gguf_cache_path(config, quantize)
    if cache.is_verified(dest) is not None:
        return dest
    log.info("converting %s to GGUF %s once (a few seconds for a small BERT), then every load reuses %s",
             name, quantize.upper(), dest)
    convert_to_gguf(config, dest, quantize, name=name)
    return dest


# -- the conversion --------------------------------------------------------------------------------


def _vocabulary(config: ModelConfig) -> tuple[list[str], set[str], bool, bool | None]:
    """Tokens by id, the special ones, and the BERT normaliser's lowercase / strip_accents settings."""
    for folder in (config.transformer_path, config.path):
        tj = folder / "tokenizer.json"
        if tj.is_file():
            data = json.loads(tj.read_text(encoding="utf-8"))
            model = data.get("model") or {}
            if model.get("type") != "WordPiece":
                raise ModelLoadError(f"{tj}: a {model.get('type')!r} tokenizer; vecembed converts WordPiece "
                                     "(BERT) tokenizers to GGUF", path=str(tj))
            vocab: dict[str, int] = model["vocab"]
            special = {t["content"] for t in data.get("added_tokens") or () if t.get("special")}
            norm = data.get("normalizer") or {}
            lowercase = bool(norm.get("lowercase", True))
            strip = norm.get("strip_accents")
            break
        vt = folder / "vocab.txt"
        if vt.is_file():
            lines = vt.read_text(encoding="utf-8").splitlines()
            vocab = {tok: i for i, tok in enumerate(lines)}
            special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} & set(vocab)
            lowercase, strip = True, None
            tok_cfg = folder / "tokenizer_config.json"
            if tok_cfg.is_file():
                lowercase = bool(json.loads(tok_cfg.read_text(encoding="utf-8")).get("do_lower_case", True))
            break
    else:
        raise ModelLoadError(f"{config.path}: no tokenizer.json or vocab.txt to convert", path=str(config.path))
    tokens = [f"[PAD{i}]" for i in range(max(vocab.values()) + 1)]
    for tok, i in vocab.items():
        tokens[i] = tok
    return tokens, special, lowercase, None if strip is None else bool(strip)


def _load_weights(config: ModelConfig) -> dict[str, NDArray[Any]]:
    numpy_io = require("safetensors.numpy", "gguf", "converting a model to GGUF")
    path = config.transformer_path / "model.safetensors"
    if not path.is_file():
        raise ModelLoadError(f"{path}: absent; vecembed converts safetensors weights to GGUF "
                             "(pytorch_model.bin is not read, to never unpickle)", path=str(path))
    weights: dict[str, NDArray[Any]] = numpy_io.load_file(str(path))
    out = {}
    for name, value in weights.items():
        for prefix in ("bert.", "model."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value
    return out


def convert_to_gguf(config: ModelConfig, dest: Path, quantize: str, *, name: str) -> None:
    """Write ``config``'s BERT as a GGUF file at ``dest`` (atomically, with a checksum sidecar)."""
    gguf = require("gguf", "gguf", "converting a model to GGUF")
    _check_convertible(config)
    hf = config.hf_config
    weights = _load_weights(config)
    n_layers = int(hf["num_hidden_layers"])
    tokens, special, lowercase, strip_accents = _vocabulary(config)
    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0}[quantize]
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quantize]

    def ident(tok: str) -> int:
        try:
            return tokens.index(tok)
        except ValueError:
            raise ModelLoadError(f"{config.path}: the vocabulary has no {tok} token", path=str(config.path)) from None

    with cache.atomic_path(dest) as tmp:
        writer = gguf.GGUFWriter(str(tmp), "bert")
        writer.add_name(name)
        writer.add_context_length(int(hf.get("max_position_embeddings", 512)))
        writer.add_embedding_length(int(hf["hidden_size"]))
        writer.add_feed_forward_length(int(hf["intermediate_size"]))
        writer.add_block_count(n_layers)
        writer.add_head_count(int(hf["num_attention_heads"]))
        writer.add_layer_norm_eps(float(hf.get("layer_norm_eps", 1e-12)))
        writer.add_causal_attention(False)
        writer.add_pooling_type(gguf.PoolingType(_POOLING_TYPES[config.pooling]))
        writer.add_file_type(ftype)
        # the vocabulary in llama.cpp's WPM form: "##x" continues a word as "x", a word start gets "▁"
        types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
        phantom = [t if t in special else t[2:] if t.startswith("##") else "\u2581" + t for t in tokens]
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(phantom)
        writer.add_token_types(types)
        writer.add_token_type_count(int(hf.get("type_vocab_size", 2)))
        writer.add_bos_token_id(ident("[CLS]"))
        writer.add_sep_token_id(ident("[SEP]"))
        writer.add_unk_token_id(ident("[UNK]"))
        writer.add_pad_token_id(ident("[PAD]"))
        if "[MASK]" in tokens:
            writer.add_mask_token_id(ident("[MASK]"))
        writer.add_add_bos_token(True)
        writer.add_add_sep_token(True)
        writer.add_add_eos_token(False)
        writer.add_bool("tokenizer.ggml.normalizer.lowercase", lowercase)
        writer.add_bool("tokenizer.ggml.normalizer.strip_accents",
                        lowercase if strip_accents is None else strip_accents)
        # what sentence-transformers' config files say and llama.cpp has no key for
        writer.add_bool(META_NORMALIZE, config.normalize)
        writer.add_uint32(META_MAX_SEQ_LENGTH, config.max_seq_length)
        writer.add_string(META_QUERY_PROMPT, config.query_prompt)
        writer.add_string(META_DOCUMENT_PROMPT, config.document_prompt)
        writer.add_string(META_SOURCE, f"{name} {weights_digest(config.transformer_path)}")
        for gguf_name, data in _bert_tensors(weights, n_layers, gguf):
            encoded, dtype = _encode(gguf, gguf_name, data, qtype)
            writer.add_tensor(gguf_name, encoded, raw_dtype=dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    # the sidecar after the file is in place: a file without one counts as unfinished and is rebuilt
    cache.write_checksum(dest, model=name, quantize=quantize, converter=CONVERTER_VERSION)


def _encode(gguf: Any, name: str, data: NDArray[Any], qtype: Any) -> tuple[NDArray[Any], Any]:
    """The tensor in the type llama.cpp's converter would choose for it, and that type."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    keep_f32 = (data.ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight")
                or name in ("position_embd.weight", "token_types.weight"))
    if keep_f32 or qtype == gguf.GGMLQuantizationType.F32:
        return data, gguf.GGMLQuantizationType.F32
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:  # a row length Q8_0 cannot block (not a multiple of 32): F16, as llama.cpp does
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.F16), gguf.GGMLQuantizationType.F16


def _bert_tensors(weights: dict[str, NDArray[Any]], n_layers: int, gguf: Any) -> list[tuple[str, NDArray[Any]]]:
    """(GGUF name, array) for every tensor llama.cpp's BERT reads, from Hugging Face BERT names."""

    def take(key: str) -> NDArray[Any]:
        try:
            return weights[key]
        except KeyError:
            raise ModelLoadError(f"the weights have no tensor {key!r}; is this a BERT model?") from None

    out = [
        ("token_embd.weight", take("embeddings.word_embeddings.weight")),
        ("position_embd.weight", take("embeddings.position_embeddings.weight")),
        ("token_embd_norm.weight", take("embeddings.LayerNorm.weight")),
        ("token_embd_norm.bias", take("embeddings.LayerNorm.bias")),
    ]
    if "embeddings.token_type_embeddings.weight" in weights:
        out.append(("token_types.weight", weights["embeddings.token_type_embeddings.weight"]))
    for i in range(n_layers):
        hf = f"encoder.layer.{i}."
        att = hf + "attention."
        qkv = [take(att + f"self.{p}.weight") for p in ("query", "key", "value")]
        qkv_b = [take(att + f"self.{p}.bias") for p in ("query", "key", "value")]
        out += [
            (f"blk.{i}.attn_qkv.weight", np.concatenate(qkv, axis=0)),
            (f"blk.{i}.attn_qkv.bias", np.concatenate(qkv_b, axis=0)),
            (f"blk.{i}.attn_output.weight", take(att + "output.dense.weight")),
            (f"blk.{i}.attn_output.bias", take(att + "output.dense.bias")),
            (f"blk.{i}.attn_output_norm.weight", take(att + "output.LayerNorm.weight")),
            (f"blk.{i}.attn_output_norm.bias", take(att + "output.LayerNorm.bias")),
            (f"blk.{i}.ffn_up.weight", take(hf + "intermediate.dense.weight")),
            (f"blk.{i}.ffn_up.bias", take(hf + "intermediate.dense.bias")),
            (f"blk.{i}.ffn_down.weight", take(hf + "output.dense.weight")),
            (f"blk.{i}.ffn_down.bias", take(hf + "output.dense.bias")),
            (f"blk.{i}.layer_output_norm.weight", take(hf + "output.LayerNorm.weight")),
            (f"blk.{i}.layer_output_norm.bias", take(hf + "output.LayerNorm.bias")),
        ]
    return out
