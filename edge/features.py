"""Which features the edge runs, in pipeline order, built from the config."""

from __future__ import annotations

from edge.config import EdgeConfig
from edge.feature import EdgeContext, EdgeFeature


def build_features(config: EdgeConfig, ctx: EdgeContext) -> list[EdgeFeature]:
    """Features in order: their filters run in this order, within each insertion point."""
    features: list[EdgeFeature] = []
    return features
