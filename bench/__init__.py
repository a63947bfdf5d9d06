"""`make bench`: throughput, latency and memory of the service against baselines from the same run.

Everything runs on this machine with no configuration: an embedded PostgreSQL in a temporary
directory, the NetValve sandbox and the service as subprocesses of their own (so none shares
another's GIL), and the load generator in this process. See docs/benchmarks.md for the figures
and `python -m bench --help` for the options.
"""
