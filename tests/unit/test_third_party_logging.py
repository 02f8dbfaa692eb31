"""Third-party code that logs through the root logger leaves the user's logging as it was (issue 10 #6)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import pytest

from vecembed.providers.onnx_graph import _root_logger_untouched


def _fake_onnxruntime_module(tmp_path: Path) -> Any:
    # onnxruntime's quantiser calls the module-level logging.warning(): with no root handler, that runs
    # basicConfig() and leaves a StreamHandler on the user's root logger.
    folder = tmp_path / "onnxruntime" / "quantization"
    folder.mkdir(parents=True)
    (folder / "fake.py").write_text(
        "import logging\n"
        "def quantize():\n"
        "    logging.warning('Please consider to run pre-processing before quantization.')\n",
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("fake_ort_quantizer", folder / "fake.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_handler_is_left_on_an_unconfigured_root_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake_onnxruntime_module(tmp_path)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # an application that configured no logging (pytest's are set aside)
    with _root_logger_untouched():
        fake.quantize()
    assert root.handlers == [] and root.filters == []
    assert "pre-processing" not in capsys.readouterr().err
    # Without the guard, the same call configures the user's root logger: what the guard prevents.
    fake.quantize()
    assert any(type(h) is logging.StreamHandler for h in root.handlers)
    for handler in list(root.handlers):
        root.removeHandler(handler)


def test_the_users_own_handler_does_not_see_third_party_noise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_onnxruntime_module(tmp_path)
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    mine = Collect()
    monkeypatch.setattr(root, "handlers", [mine])
    with _root_logger_untouched():
        fake.quantize()
        logging.getLogger("myapp").warning("the user's own record")
    assert seen == ["the user's own record"]
    assert root.handlers == [mine]
