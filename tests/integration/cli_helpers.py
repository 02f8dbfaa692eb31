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
