"""Mesh TLS: mutual TLS between the edge and sidecars, and between sidecars, on Consul Connect.

Consul's Connect CA signs a certificate per *service* whose identity is a
SPIFFE URI (``spiffe://<trust domain>/ns/default/dc/dc1/svc/orders``); its
intentions say which service may call which. With ``mesh_tls`` on:

- ``spiffe``: the service named by a certificate's URI (pure);
- ``intentions``: Consul's intentions → the allow/deny decision for a caller (pure);
- ``material``: a certificate, key and roots as Consul hands them → SSL contexts;
- ``contexts``: :class:`contexts.MeshTls`, the contexts in use now, swapped
  whole when Consul renews the certificate or rotates its roots, and what an
  upstream connection must present;
- :mod:`discovery.connect_ca` follows Consul (blocking queries) and feeds them.

A sidecar registers its instance as Connect-native; an edge or sidecar speaks
TLS to an instance so registered (and, with ``require``, only to such), and
checks that the certificate it gets names the service it meant to call.
"""
