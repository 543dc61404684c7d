"""Benchmarks of the collector and the ingest path. See docs/benchmarks.md."""
