"""The caller identity the edge hands to the services, and how a sidecar checks it.

The edge authenticates outside callers once; what it learns travels inside the
mesh in two forms, both defined here because the edge writes them and the
sidecars read them:

- ``headers``: the *managed* identity headers (``X-User-Id`` ...), matched in
  every spelling a server might fold together, and their removal;
- ``keys``: the edge's signing key (ES256 or EdDSA), its public JWK and PEM forms;
- ``token``: the short-lived internal token (``X-Mesh-Identity``) that binds
  those headers, the subject, the roles and the request id to the edge's
  signature: signed by :class:`token.IdentitySigner`, checked by
  :func:`token.verify_identity_token`.
"""
