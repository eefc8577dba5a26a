"""Benchmark mode, ``imgfetch bench`` (the README's Architecture section is the map of its modules)."""
