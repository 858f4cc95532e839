"""Authentication at the edge: bearer tokens verified locally (JWT + JWKS) or by introspection.

Everything here is decision logic with injected clocks and injected I/O; the HTTP
filter that calls it lives in the edge chain. Modules, by responsibility:

- ``errors``: the one error type, rendered as RFC 6750 challenges.
- ``bearer``: extracting the token from an ``Authorization`` header.
- ``jws_header``: strict parsing of a compact JWS before any key is touched.
- ``keys``: turning a JWK into a verification key with its allowed algorithms.
- ``jwks`` / ``jwks_http``: the cached key set and its HTTP fetcher
  (``http_body``: bounded reads of the auth service's answers).
- ``claim_checks`` / ``claims``: registered-claim rules and the verified identity.
- ``token_cache``: the bounded, expiring cache of verified answers.
- ``jwt_verifier``: local verification; ``introspection`` / ``introspection_http``: RFC 7662.

Wiring into the edge (the HTTP filters are in ``edge/filters/``):

- ``config``: the ``auth`` settings (global and per route) and their validation.
- ``policy``: a route's policy, resolved once per route.
- ``credentials``: which credential a request presents (bearer token or API key).
- ``apikeys`` / ``apikey_verifier``: the Redis key store (digests only) and its cache.
- ``identity``: the caller's Identity and its headers, derived once (with
  :class:`edge.object_memo.ObjectMemo`).
- ``authenticator``: policy + credential → identity (or AuthError / unavailable).
- ``challenge``: refusals rendered as WWW-Authenticate challenges.
- ``service_url``: the auth service found in the catalog, as a URL or as a call
  through the edge's transport (``service_fetch``: one request to one instance,
  over mesh TLS to a Connect-native one).
- ``endpoint``: one request to an auth service endpoint, either way, for the
  JWKS (``jwks_http``) and introspection (``introspection_http``) clients;
  ``http_body``: the bounded body read both ways share.
- ``feature``: the AuthFeature that builds all of it from the config.
"""
