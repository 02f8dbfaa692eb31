"""Every Python block in README.md runs as written (in a scratch folder), so the docs cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int, tmp_path: Path, minilm_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VECEMBED_OFFLINE": "1"}
    env.pop("VECEMBED_CHROMA_URL", None)
    env.pop("VECEMBED_QDRANT_URL", None)
    proc = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"README python block {index} failed:\n{BLOCKS[index]}\n{proc.stderr[-3000:]}"
    if "[['1']]" in BLOCKS[index]:
        assert "[['1']]" in proc.stdout  # the Chroma example's promised answer
    if "faq-1" in BLOCKS[index]:  # the store example: the report, the re-run skipping both, the promised hit
        lines = proc.stdout.splitlines()
        assert "2 written" in lines[0] and lines[1] == "2" and lines[2].startswith("faq-1 ")
