"""A private loopback mail system for tests, `make run` and benchmarks."""
