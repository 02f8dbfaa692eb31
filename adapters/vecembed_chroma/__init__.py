"""Chroma adapter for vecembed (see issue 4)."""
