"""Which features the edge runs, in pipeline order, built from the config."""

from __future__ import annotations

from edge.auth.feature import AuthFeature
from edge.cache.feature import CacheFeature
from edge.compression.feature import CompressionFeature
from edge.config import EdgeConfig
from edge.cors.feature import CorsFeature
from edge.ext_authz.feature import ExtAuthzFeature
from edge.faults.feature import FaultsFeature
from edge.feature import EdgeContext, EdgeFeature
from edge.gateway import config_routes
from edge.headers.feature import HeadersFeature
from edge.ip_access.feature import IpAccessFeature
from edge.mirror.feature import MirrorFeature
from edge.ratelimit.feature import RateLimitFeature
from edge.telemetry_feature import TelemetryFeature


def build_features(config: EdgeConfig, ctx: EdgeContext) -> list[EdgeFeature]:
    """Features in order: their filters run in this order, within each insertion point."""
    features: list[EdgeFeature] = []
    # First: its span and access-log line cover everything the others do.
    features.append(TelemetryFeature(config.telemetry))
    # Then: a refused address costs no more work, and learns nothing of the routes.
    features.append(IpAccessFeature(config, ctx.registry))
    # Before auth: a browser's preflight carries no credentials.
    features.append(CorsFeature(config, ctx.registry))
    # Always on: identity headers are stripped from every request, auth configured or not.
    auth = AuthFeature(config.auth, ctx, workers=config.workers)
    features.append(auth)
    # After auth: the check carries the identity the edge verified, so the authorization
    # service can decide on roles. Before the limits (as Kong runs its auth plugins before
    # rate limiting): a request the service refuses spends none of its caller's tokens,
    # and limits counting by a header see the one the service set. The price: a flood
    # that the limits would refuse costs a check each; protect the service with its own
    # limits (its sidecar's inbound cap). Always built, so that a reload can turn it on.
    features.append(ExtAuthzFeature(config, ctx, auth.signer))
    if config.rate_limits.enabled:
        # After auth: limits are per caller, so the identity must be known.
        features.append(
            RateLimitFeature(
                config.rate_limits,
                ctx,
                edge_service=config.registration.name,
                routes=config_routes(config),
            )
        )
    # After the limits: its filter only marks the request; a refused one never needs it.
    features.append(CompressionFeature(config, ctx.registry))
    # Last after routing: auth and limits see the client's headers, not the changed ones.
    features.append(HeadersFeature(config))
    # Late: its filter runs right before the cache's, the mirror's and the proxy (Envoy's
    # fault filter comes before the router), so only requests every other filter let
    # through are delayed or aborted, and an aborted request is never copied.
    features.append(FaultsFeature(config, ctx.registry))
    # After the faults (a fault is what the caller sees, hits included; an injected abort
    # is never taken for the service failing, so never answered from a stale entry) and
    # before the mirror (a hit never reaches the service, so it is not copied, as the
    # router's mirror in Envoy never sees what its cache filter answered; a copy is the
    # request as the service gets it, revalidations included).
    features.append(CacheFeature(config, ctx))
    # Last: its filter comes after every other's before the proxy (the identity token's
    # too), so a copy carries the request as the service gets it.
    features.append(MirrorFeature(config, ctx))
    return features
