"""The pymilter adapter: callbacks in, actions out.

Not a top-level `milter` package: pymilter's C extension is imported under that name."""
