"""Passive outlier detection at the edge: configuration, metrics and wiring.

The decisions are :class:`mesh.resilience.outliers.OutlierDetector`'s; the
proxy (:class:`mesh.proxy.Proxy`) asks it which instances are eligible and
records every attempt's outcome on it.
"""
