"""Database commands: ``ingest`` and ``search`` (placeholder until the adapters land)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add this module's sub-commands to the CLI."""
