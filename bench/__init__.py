"""Benchmarks of cdp: ``python -m bench ingest`` (see bench/README.md)."""
