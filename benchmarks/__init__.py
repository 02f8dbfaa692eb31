"""vecembed benchmarks (not tests): ``python benchmarks/run.py`` or ``python -m benchmarks.run``."""
