"""Reading sentence-transformers configuration files, and defaults for a plain Hugging Face directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vecembed import InvalidInputError
from vecembed.model_config import load_model_config


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def st_dir(tmp_path: Path, pooling: dict[str, object], normalize: bool = True) -> Path:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    write(tmp_path / "modules.json", modules)
    write(tmp_path / "1_Pooling" / "config.json", pooling)
    write(tmp_path / "config.json", {"model_type": "bert", "hidden_size": 8, "max_position_embeddings": 512})
    return tmp_path


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"pooling_mode_mean_tokens": True}, "mean"),
        ({"pooling_mode_cls_token": True}, "cls"),
        ({"pooling_mode_max_tokens": True}, "max"),
        ({"pooling_mode_mean_sqrt_len_tokens": True}, "mean_sqrt_len"),
        ({"pooling_mode_lasttoken": True}, "last"),
        ({"pooling_mode": "lasttoken"}, "last"),
    ],
)
def test_pooling_comes_from_the_pooling_module(tmp_path: Path, flags: dict[str, object], expected: str) -> None:
    assert load_model_config(st_dir(tmp_path, flags)).pooling == expected


def test_normalize_module_prompts_and_max_length(tmp_path: Path) -> None:
    d = st_dir(tmp_path, {"pooling_mode_cls_token": True}, normalize=False)
    write(d / "sentence_bert_config.json", {"max_seq_length": 128})
    write(d / "config_sentence_transformers.json", {"prompts": {"query": "query: ", "passage": "passage: "}})
    cfg = load_model_config(d)
    assert (cfg.normalize, cfg.max_seq_length, cfg.query_prompt, cfg.document_prompt) == (
        False, 128, "query: ", "passage: ")
    assert cfg.is_sentence_transformers


def test_plain_hf_directory_gets_sensible_defaults(tmp_path: Path) -> None:
    write(tmp_path / "config.json", {"model_type": "bert", "hidden_size": 8, "max_position_embeddings": 512})
    write(tmp_path / "tokenizer_config.json", {"model_max_length": 1000000000000000019884624838656})
    cfg = load_model_config(tmp_path)
    assert (cfg.pooling, cfg.normalize, cfg.max_seq_length, cfg.hidden_size) == ("mean", True, 512, 8)


def test_overrides_win_and_unknown_modules_are_refused(tmp_path: Path) -> None:
    d = st_dir(tmp_path, {"pooling_mode_mean_tokens": True})
    cfg = load_model_config(d, pooling="cls", max_seq_length=32, normalize=None)
    assert (cfg.pooling, cfg.max_seq_length, cfg.normalize) == ("cls", 32, True)
    modules = json.loads((d / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    write(d / "modules.json", modules)
    with pytest.raises(InvalidInputError, match="Dense"):
        load_model_config(d)


def test_several_concatenated_poolings_are_refused_with_advice(tmp_path: Path) -> None:
    d = st_dir(tmp_path, {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True})
    with pytest.raises(InvalidInputError, match="pooling="):
        load_model_config(d)
