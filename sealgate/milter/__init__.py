"""The pymilter adapter: callbacks in, actions out. (Not named `milter` at top level: pymilter owns that name.)"""
