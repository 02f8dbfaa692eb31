"""Every script in examples/ runs, offline, in a subprocess, and prints what it promises — so none can rot.

Each script gets small inputs (a table below); a script this file does not know
yet runs with ``--backend mock`` when it has that option, else with no
arguments — it still has to exit 0 and print something.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["backend_fixtures"]  # vecembed_cache: a private ONNX cache for the session

# Exports go to the session's private cache (VECEMBED_CACHE, inherited by subprocesses), not the user's.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("vecembed_cache")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))
TIMEOUT_S = 240

#: script -> arguments for a small, bounded run. static is left out of choose_backend here: its first use
#: distils a model (minutes); the static backend's own tests cover it.
ARGS: dict[str, list[str]] = {
    "choose_backend.py": ["--backends", "torch,onnx,int8", "--texts", "60"],
    "custom_provider.py": [],
    "chroma_quickstart.py": ["--backend", "mock"],
    "qdrant_ingest.py": ["--backend", "mock", "--where", "genre=news"],
}


def _args(script: str) -> list[str]:
    if script in ARGS:
        return ARGS[script]
    return ["--backend", "mock"] if "--backend" in (EXAMPLES / script).read_text(encoding="utf-8") else []


def _run(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VECEMBED_OFFLINE": "1",
           "VECEMBED_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *_args(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_there_are_examples() -> None:
    assert {"choose_backend.py", "custom_provider.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script: str, tmp_path: Path) -> None:
    proc = _run(script, tmp_path)
    assert proc.stdout.strip(), f"{script} printed nothing"
    # examples run in a temporary folder of their own: nothing is left in the working directory
    assert list(tmp_path.iterdir()) == [], f"{script} left files behind: {list(tmp_path.iterdir())}"
    check = CHECKS.get(script)
    if check is not None:
        check(proc.stdout)


def _check_choose_backend(out: str) -> None:
    rows = {m[1]: m for m in re.finditer(
        r"^(\w+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)x\s+([\d.]+|n/a)\s+([\d.]+|n/a)\s+([\d.]+)$", out, re.M)}
    assert set(rows) == {"torch", "onnx", "int8"}, out
    assert rows["torch"][6] == "1.0000" and rows["torch"][8] == "1.000"  # the reference against itself
    assert float(rows["onnx"][6]) >= 0.999  # onnx reproduces torch
    assert 0.9 <= float(rows["int8"][6]) < 1.0  # int8 is close, not identical
    fingerprints = dict(re.findall(r"^  (\w+)\s+(ve1-\w+)$", out, re.M))
    assert fingerprints["torch"] == fingerprints["onnx"] != fingerprints["int8"]


def _check_custom_provider(out: str) -> None:
    assert "isinstance(provider, vecembed.EmbeddingProvider): True" in out
    for sku in ("sku-1", "sku-2", "sku-5"):  # the misspelt queries find their products in both databases
        assert out.count(f"-> {sku}") == 2, out
    assert "Chroma refused another model" in out and "Qdrant refused another model" in out
    assert "Qdrant still holds 5 points; Chroma 5 records" in out


def _check_qdrant_ingest(out: str) -> None:
    genres = re.findall(r"\{'genre': '(\w+)'", out)
    assert genres and set(genres) == {"news"}, out  # the payload filter held
    assert "400 written" in out and "re-run:   0 written, 400 unchanged; 400 points" in out  # idempotent
    assert "health: ok" in out


def _check_chroma_quickstart(out: str) -> None:
    assert "health: ok" in out


CHECKS = {
    "choose_backend.py": _check_choose_backend,
    "custom_provider.py": _check_custom_provider,
    "qdrant_ingest.py": _check_qdrant_ingest,
    "chroma_quickstart.py": _check_chroma_quickstart,
}
