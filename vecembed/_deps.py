"""The one place where optional dependencies are imported.

Backends and adapters call :func:`require` instead of ``import torch`` at module
level, so that ``import vecembed`` stays light and a missing extra becomes a
:class:`~vecembed.errors.MissingDependencyError` naming the ``pip install`` to run.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from vecembed.errors import MissingDependencyError

__all__ = ["importable", "require"]


def importable(module: str) -> bool:
    """Whether ``module`` could be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``vecembed[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only a missing top-level package means "install the extra"; an ImportError
        # raised *inside* an installed package is a real bug and must surface as is.
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise MissingDependencyError(module, extra, purpose) from None
