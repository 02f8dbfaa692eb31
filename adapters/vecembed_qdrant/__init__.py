"""Qdrant adapter for vecembed (see issue 5)."""
