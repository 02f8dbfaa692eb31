"""Third-party code that logs through the root logger leaves the user's logging as it was (issue 10 #6)."""

from __future__ import annotations

import importlib.util
import io
import logging
from pathlib import Path
from typing import Any

import pytest

from vecembed.providers.onnx_build import _root_logger_untouched


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


def test_third_party_bars_are_quiet_inside_and_back_after() -> None:
    tqdm = pytest.importorskip("tqdm")
    from vecembed.progress import third_party_quiet

    def bar_output() -> str:
        out = io.StringIO()
        for _ in tqdm.tqdm(range(3), desc="Encoding tokens", file=out, mininterval=0):
            pass
        return out.getvalue()

    assert "Encoding tokens" in bar_output()  # tqdm draws on any stream it is given
    with third_party_quiet(False):
        assert bar_output() == ""
        with third_party_quiet(False):  # nested sections: still quiet after the inner one ends
            pass
        assert bar_output() == ""
    assert "Encoding tokens" in bar_output()


def test_asked_for_bars_still_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    tqdm = pytest.importorskip("tqdm")
    from vecembed.progress import NO_PROGRESS_ENV, third_party_quiet

    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    out = io.StringIO()
    with third_party_quiet(True):
        for _ in tqdm.tqdm(range(2), desc="asked", file=out, mininterval=0):
            pass
    assert "asked" in out.getvalue()


def test_transformers_load_reports_are_held_back_then_restored() -> None:
    transformers_logging = pytest.importorskip("transformers.utils.logging")
    from vecembed.progress import third_party_quiet

    before = transformers_logging.get_verbosity()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("transformers.utils.loading_report")
    logger.addHandler(handler)
    try:
        with third_party_quiet(None):
            logger.warning("BertModel LOAD REPORT from: somewhere")
        assert stream.getvalue() == ""
        assert transformers_logging.get_verbosity() == before
        logger.warning("after")
        assert "after" in stream.getvalue()
    finally:
        logger.removeHandler(handler)
