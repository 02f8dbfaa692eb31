"""Backends. Each module here imports its heavy dependency only when a provider is built."""
