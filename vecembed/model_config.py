"""Read a model directory's configuration the way sentence-transformers does.

``modules.json`` (which modules run, where the transformer lives, whether a
``Normalize`` module follows), ``1_Pooling/config.json`` (pooling),
``sentence_bert_config.json`` (max_seq_length),
``config_sentence_transformers.json`` (query/document prompts) and the
Hugging Face ``config.json``. A plain Hugging Face directory gets sensible
defaults: mean pooling, L2 normalisation, the tokenizer's length limit.

A file that is there but cannot be read or asks for something vecembed does
not run raises :class:`~vecembed.errors.ModelLoadError` naming the file; a
missing tokenizer is a :class:`~vecembed.errors.ModelNotFoundError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecembed.errors import InvalidInputError, ModelLoadError, ModelNotFoundError
from vecembed.types import POOLING_MODES

__all__ = ["ModelConfig", "load_model_config", "load_tokenizer"]

_ST_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_lasttoken": "last",
}
_POOLING_ALIASES = {"lasttoken": "last", "mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Everything the text pipeline and the backends need to know about a model directory."""

    path: Path
    transformer_path: Path
    pooling: str = "mean"
    normalize: bool = True
    max_seq_length: int = 512
    query_prompt: str = ""
    document_prompt: str = ""
    hidden_size: int | None = None
    model_type: str = ""
    architectures: tuple[str, ...] = ()
    hf_config: dict[str, Any] = field(default_factory=dict)
    is_sentence_transformers: bool = False

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_MODES:
            raise InvalidInputError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.max_seq_length <= 0:
            raise InvalidInputError(f"max_seq_length must be positive, got {self.max_seq_length}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: the file is there but damaged
        raise ModelLoadError(f"{path}: not valid JSON ({exc})", path=str(path)) from None


def _read_json_object(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(data).__name__}", path=str(path))
    return data


def _pooling_from_st(path: Path) -> str:
    cfg = _read_json_object(path)
    mode = cfg.get("pooling_mode")
    if isinstance(mode, str):
        mode = _POOLING_ALIASES.get(mode, mode)
        if mode in POOLING_MODES:
            return mode
    chosen = [name for key, name in _ST_POOLING_KEYS.items() if cfg.get(key)]
    if cfg.get("pooling_mode_weightedmean_tokens"):
        raise ModelLoadError(
            f"{path}: weighted-mean pooling is not supported; pass pooling='mean' to override", path=str(path)
        )
    if len(chosen) > 1:
        raise ModelLoadError(
            f"{path}: the model concatenates several poolings ({', '.join(chosen)}); vecembed supports one; "
            "pass pooling=... to choose",
            path=str(path),
        )
    return chosen[0] if chosen else "mean"


def load_model_config(path: Path, **overrides: Any) -> ModelConfig:
    """Read ``path``'s configuration; ``overrides`` (pooling, normalize, max_seq_length, prompts) win."""
    modules_file = path / "modules.json"
    transformer_path = path
    pooling = "mean"
    normalize = True
    is_st = modules_file.is_file()
    pooling_dir: Path | None = None
    if is_st:
        normalize = False
        modules = _read_json(modules_file)
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise ModelLoadError(f"{modules_file}: expected a JSON list of modules", path=str(modules_file))
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            sub = path / str(module.get("path", ""))
            if kind == "Transformer":
                transformer_path = sub
            elif kind == "Pooling":
                pooling_dir = sub
            elif kind == "Normalize":
                normalize = True
            elif kind not in _SUPPORTED_MODULES:
                raise ModelLoadError(
                    f"{modules_file}: module type {module.get('type')!r} is not supported "
                    f"(vecembed runs {', '.join(_SUPPORTED_MODULES)})",
                    path=str(modules_file),
                )
    # An explicit pooling= wins without reading the model's: that is what lets a caller run a model whose
    # pooling vecembed does not support (weighted mean, several at once) with one it does.
    pooling_file = None if pooling_dir is None else pooling_dir / "config.json"
    if overrides.get("pooling") is None and pooling_file is not None and pooling_file.is_file():
        pooling = _pooling_from_st(pooling_file)

    hf_config: dict[str, Any] = {}
    for candidate in (transformer_path / "config.json", path / "config.json"):
        if candidate.is_file():
            hf_config = _read_json_object(candidate)
            break

    max_len = None
    for sbert in (transformer_path / "sentence_bert_config.json", path / "sentence_bert_config.json"):
        if sbert.is_file():
            max_len = _read_json_object(sbert).get("max_seq_length")
            if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int | float)
                                        or max_len < 1):
                raise ModelLoadError(f"{sbert}: max_seq_length must be a positive int, got {max_len!r}",
                                     path=str(sbert))
            break
    if max_len is None:
        limits = [hf_config.get("max_position_embeddings")]
        tok_cfg = transformer_path / "tokenizer_config.json"
        if tok_cfg.is_file():
            limits.append(_read_json_object(tok_cfg).get("model_max_length"))
        sane = [int(v) for v in limits if isinstance(v, int | float) and 0 < v < 1_000_000]
        max_len = min(sane) if sane else 512

    query_prompt = document_prompt = ""
    st_cfg = path / "config_sentence_transformers.json"
    if st_cfg.is_file():
        prompts = _read_json_object(st_cfg).get("prompts") or {}
        query_prompt = str(prompts.get("query", ""))
        document_prompt = str(
            next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
        )

    values: dict[str, Any] = {
        "pooling": pooling,
        "normalize": normalize,
        "max_seq_length": int(max_len),
        "query_prompt": query_prompt,
        "document_prompt": document_prompt,
    }
    for key, value in overrides.items():
        if value is not None:
            if key not in values:
                raise InvalidInputError(f"unknown model option {key!r}; valid: {', '.join(values)}")
            values[key] = _POOLING_ALIASES.get(value, value) if key == "pooling" else value
    hidden = hf_config.get("hidden_size") or hf_config.get("d_model") or hf_config.get("dim")
    return ModelConfig(
        path=path,
        transformer_path=transformer_path,
        hidden_size=int(hidden) if hidden else None,
        model_type=str(hf_config.get("model_type", "")),
        architectures=tuple(hf_config.get("architectures") or ()),
        hf_config=hf_config,
        is_sentence_transformers=is_st,
        **values,
    )


def load_tokenizer(config: ModelConfig) -> Any:
    """The model's fast tokenizer (``tokenizer.json``), or a WordPiece one built from ``vocab.txt``."""
    from tokenizers import Tokenizer

    for d in (config.transformer_path, config.path):
        if (d / "tokenizer.json").is_file():
            try:
                return Tokenizer.from_file(str(d / "tokenizer.json"))
            except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
                raise ModelLoadError(f"{d / 'tokenizer.json'}: not a tokenizer file ({exc})",
                                     path=str(d / "tokenizer.json")) from exc
    for d in (config.transformer_path, config.path):
        if (d / "vocab.txt").is_file():
            from tokenizers.implementations.bert_wordpiece import BertWordPieceTokenizer

            lower = True
            tok_cfg = d / "tokenizer_config.json"
            if tok_cfg.is_file():
                lower = bool(_read_json_object(tok_cfg).get("do_lower_case", True))
            try:
                return BertWordPieceTokenizer(str(d / "vocab.txt"), lowercase=lower)._tokenizer
            except Exception as exc:
                raise ModelLoadError(f"{d / 'vocab.txt'}: not a WordPiece vocabulary ({exc})",
                                     path=str(d / "vocab.txt")) from exc
    raise ModelNotFoundError(
        str(config.path),
        [f"{config.path}/tokenizer.json: absent", f"{config.path}/vocab.txt: absent"],
        hint="the model directory has no tokenizer",
    )
