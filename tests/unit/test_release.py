"""A release a stranger can install (issue 22 #11): licence, changelog, version, and CI's wheel check.

The full check (build, ``twine check``, the wheel in a fresh venv running ``vecembed demo``) is
``.ci/wheel_check.py``, run by ``.ci/run``; here: the files it relies on, and (slow) the wheel's contents.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import vecembed

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml here needs Python >= 3.11 (tomllib)")

ROOT = Path(__file__).resolve().parents[2]
#: MD5 of the Apache License 2.0 text as the Apache Software Foundation publishes it (LICENSE-2.0.txt).
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        project: dict[str, Any] = tomllib.load(fh)["project"]
    return project


def test_the_licence_file_is_the_apache_2_text_that_pyproject_declares() -> None:
    project = _project()
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert hashlib.md5((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_MD5


def test_the_changelog_has_an_entry_for_the_version_being_released() -> None:
    version = _project()["version"]
    assert vecembed.__version__ == version
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, flags=re.MULTILINE)
    assert "MANIFEST.in" not in changelog and "include CHANGELOG.md" in (ROOT / "MANIFEST.in").read_text()


def test_ci_builds_checks_and_installs_the_wheel() -> None:
    dev = " ".join(_project()["optional-dependencies"]["dev"])
    assert "build" in dev and "twine" in dev
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "python .ci/wheel_check.py" in steps


@pytest.mark.slow
@pytest.mark.integration
def test_the_wheel_holds_the_packages_the_licence_and_the_entry_points(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="pip install 'vecembed[dev]' (the release tools)")
    # --no-isolation: this environment's setuptools, no download; CI's wheel check builds in isolation
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                           str(ROOT)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("vecembed-*.whl")
    spec = importlib.util.spec_from_file_location("wheel_check", ROOT / ".ci" / "wheel_check.py")
    assert spec is not None and spec.loader is not None
    wheel_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wheel_check)
    wheel_check.check_wheel_contents(wheel)  # exits naming what is missing
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        entry_points = zf.read(f"vecembed-{vecembed.__version__}.dist-info/entry_points.txt").decode()
    stores = entry_points.split("[vecembed.stores]")[1]
    assert {line.split(" = ")[0] for line in stores.strip().splitlines()} == set(wheel_check.STORES)
