"""Running the installed ``vecembed`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Bound for one CLI run (model load + work); far above what a run needs, so only a hang trips it.
CLI_TIMEOUT_S = 180


def vecembed_command() -> list[str]:
    """The console script of this environment, else ``python -m vecembed``."""
    script = Path(sys.executable).with_name("vecembed")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "vecembed"]


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``vecembed ARGS`` offline; raise with its output when ``check`` and it fails."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VECEMBED_OFFLINE": "1",
                "VECEMBED_NO_PROGRESS": "1", **(env or {})}
    for var in ("VECEMBED_CHROMA_URL", "VECEMBED_QDRANT_URL"):
        if env is None or var not in env:
            full_env.pop(var, None)
    proc = subprocess.run([*vecembed_command(), *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"vecembed {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


#: The commands README.md and the docs site (docs/) show, verbatim. Each is run by a test (the name says which
#: one runs it), and ``test_readme_cli.py`` checks that every ``vecembed ...`` line of their shell blocks is here.
README_COMMANDS: dict[str, str] = {
    "demo": "vecembed demo",  # test_cli_demo.py
    "info": "vecembed info",  # test_readme_cli.py
    "info_int8": "vecembed info --backend onnx --opt quantize=int8 --json",  # test_readme_cli.py
    "embed": "vecembed embed texts.txt --out vectors.npy",  # test_readme_cli.py
    "ingest_chroma": "vecembed ingest ./notes --db chroma --collection notes",  # test_cli_roundtrip.py
    "search_chroma": 'vecembed search "how long do I cook noodles?" --db chroma --collection notes',
    "ingest_qdrant": "vecembed ingest ./notes --db qdrant --collection notes",  # test_cli_roundtrip.py
    "search_qdrant": 'vecembed search "how long do I cook noodles?" --db qdrant --collection notes -k 3 --json',
    "ingest_qdrant-edge": "vecembed ingest ./notes --db qdrant-edge --collection notes",  # test_cli_roundtrip.py
    "search_qdrant-edge": 'vecembed search "how long do I cook noodles?" --db qdrant-edge --collection notes',
    "ingest_pgvector": "vecembed ingest ./notes --db pgvector --collection notes",  # test_cli_roundtrip.py
    "search_pgvector": 'vecembed search "how long do I cook noodles?" --db pgvector --collection notes -k 3 --json',
    "ingest_jsonl": "vecembed ingest docs.jsonl --db qdrant --collection docs",  # test_readme_cli.py
    "search_jsonl": 'vecembed search "a cat on a windowsill" --db qdrant --collection docs -k 1',
    "ingest_hybrid": "vecembed ingest docs.jsonl --db qdrant --collection hybrid-docs --sparse bm25",  # test_readme_cli
    "search_hybrid": 'vecembed search "does aspirin prevent strokes" --db qdrant --collection hybrid-docs '
                     "--mode hybrid -k 3",  # test_readme_cli.py
    "search_sparse": 'vecembed search "aspirin" --db qdrant --collection hybrid-docs --mode sparse --where kind=trial '
                     "--json",  # test_readme_cli.py
    "export": "vecembed export --int8",  # test_readme_cli.py
    "export_gguf": "vecembed export --format gguf --quantize q8_0 --out .",  # test_readme_cli.py
    "distill": "vecembed distill --dim 256",  # test_readme_cli.py (on a tiny transformer: see there)
    "bench": "vecembed bench --quick",  # test_readme_cli.py
    "serve": "vecembed serve --port 8080 --api-key change-me",  # server_fixtures.readme_server (README's client block)
    # the three migrate commands: test_migration_end_to_end.py
    "migrate": "vecembed migrate --db qdrant-edge --collection notes --to-backend static",
    "migrate_rollback": "vecembed migrate --db qdrant-edge --collection notes --rollback",
    "migrate_drop_old": "vecembed migrate --db qdrant-edge --collection notes --drop-old",
    "alias_set": "vecembed alias set docs docs-v1 --db qdrant",  # test_readme_cli.py
    "alias_list": "vecembed alias list --db qdrant",  # test_readme_cli.py
    "alias_search": 'vecembed search "how do I reset it?" --db qdrant --collection docs',  # test_readme_cli.py
    "alias_drop": "vecembed alias drop docs --db qdrant",  # test_readme_cli.py
    "ingest_ray": "vecembed ingest part-1.jsonl part-2.csv --engine ray --workers 2 --db chroma --collection docs "
                  "--url http://localhost:8000",  # test_distributed.py
    "ingest_hybrid_ray": "vecembed ingest part-1.jsonl part-2.csv --engine ray --db qdrant --collection hybrid-docs "
                         "--sparse bm25",  # test_distributed_sparse.py
}


def readme_args(name: str) -> list[str]:
    """The arguments (after ``vecembed``) of README command ``name``."""
    import shlex

    words = shlex.split(README_COMMANDS[name])
    assert words[0] == "vecembed"
    return words[1:]
