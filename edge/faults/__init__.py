"""Fault injection at edge routes (``routes[].fault``): the feature and its wiring.

The decisions and the injection are :mod:`mesh.faults`'s; the filter is
:mod:`edge.filters.faults`.
"""
