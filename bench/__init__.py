"""Side-by-side benchmarks: meshgate's edge and sidecar against nginx and HAProxy.

Run ``python -m bench.run`` (see bench/README.md).
"""
