"""Benchmarks and the load-and-fault run; `bench/stack.py` starts the processes they use."""
