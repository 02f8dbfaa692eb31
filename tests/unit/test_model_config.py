"""Reading sentence-transformers configuration files, and defaults for a plain Hugging Face directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vecembed import InvalidInputError, ModelLoadError
from vecembed.model_config import ModelConfig, load_model_config, load_tokenizer


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
    with pytest.raises(ModelLoadError, match="Dense") as err:
        load_model_config(d)
    assert err.value.path == str(d / "modules.json")


def test_several_concatenated_poolings_are_refused_with_advice(tmp_path: Path) -> None:
    d = st_dir(tmp_path, {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True})
    with pytest.raises(ModelLoadError, match="pooling="):
        load_model_config(d)
    # the advice works: an explicit pooling= is taken without reading the model's
    assert load_model_config(d, pooling="max").pooling == "max"


def test_weighted_mean_pooling_is_refused_unless_overridden(tmp_path: Path) -> None:
    d = st_dir(tmp_path, {"pooling_mode_weightedmean_tokens": True})
    with pytest.raises(ModelLoadError, match="weighted-mean"):
        load_model_config(d)
    assert load_model_config(d, pooling="mean").pooling == "mean"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("config.json", "{not json", "not valid JSON"),
        ("config.json", "[1, 2]", "expected a JSON object"),
        ("modules.json", '{"a": 1}', "list of modules"),
        ("1_Pooling/config.json", b"\xff\xfe", "not valid JSON"),
        ("sentence_bert_config.json", '{"max_seq_length": "long"}', "positive int"),
    ],
)
def test_damaged_config_files_are_model_load_errors(tmp_path: Path, name: str, content: str | bytes,
                                                    message: str) -> None:
    d = st_dir(tmp_path, {"pooling_mode_mean_tokens": True})
    target = d / name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    with pytest.raises(ModelLoadError, match=message) as err:
        load_model_config(d)
    assert err.value.path == str(target)
    assert isinstance(err.value, OSError)  # callers may catch the built-in


def test_a_damaged_tokenizer_is_a_model_load_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json"):
        load_tokenizer(ModelConfig(path=tmp_path, transformer_path=tmp_path))


def test_bad_options_stay_invalid_input(tmp_path: Path) -> None:
    d = st_dir(tmp_path, {"pooling_mode_mean_tokens": True})
    with pytest.raises(InvalidInputError, match="unknown model option"):
        load_model_config(d, colour="blue")
    with pytest.raises(InvalidInputError, match="pooling must be one of"):
        load_model_config(d, pooling="median")
