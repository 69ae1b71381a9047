"""Benchmarks: `python -m benchmarks.compare` (the gateway beside the naive yardstick) and
`benchmarks/export_benchmark.py` (the moderator export)."""
