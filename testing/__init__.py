"""Test harnesses shared by the tests and the benchmarks: fake platforms, served bots."""
