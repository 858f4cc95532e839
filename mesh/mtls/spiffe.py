"""SPIFFE identities as Consul Connect writes them, read from a peer's certificate.

Consul's Connect CA names a service ``spiffe://<trust domain>/ns/<ns>/dc/<dc>/svc/<name>``
in the certificate's URI subject-alternative name (Consul OSS: namespace
``default``). This module only reads them: no I/O, no SSL calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SCHEME = "spiffe://"

CLIENT_CERT_HEADER = "X-Forwarded-Client-Cert"
"""Who called, as a sidecar with mesh TLS tells its app (Envoy's header and format:
``By=<this service's URI>;URI=<the caller's URI>``). Only a sidecar writes it: the
edge and every sidecar remove a copy a client sent."""


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """The service a Connect certificate speaks for."""

    trust_domain: str
    namespace: str
    datacenter: str
    service: str

    @property
    def uri(self) -> str:
        return (
            f"{_SCHEME}{self.trust_domain}/ns/{self.namespace}"
            f"/dc/{self.datacenter}/svc/{self.service}"
        )


def parse_service_uri(uri: str) -> ServiceIdentity | None:
    """``spiffe://td/ns/N/dc/D/svc/S`` → its parts; None for anything else (another
    scheme, another path shape, an empty part)."""
    if not uri.startswith(_SCHEME):
        return None
    trust_domain, _, path = uri[len(_SCHEME) :].partition("/")
    parts = path.split("/")
    if len(parts) != 6 or parts[0::2] != ["ns", "dc", "svc"]:
        return None
    namespace, datacenter, service = parts[1::2]
    if not (trust_domain and namespace and datacenter and service):
        return None
    return ServiceIdentity(trust_domain, namespace, datacenter, service)


def certificate_uris(peercert: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The URI subject-alternative names of a certificate as ``SSLObject.getpeercert()``
    returns it (empty when there is no certificate or it has none)."""
    if not peercert:
        return ()
    names = peercert.get("subjectAltName") or ()
    return tuple(value for kind, value in names if kind == "URI")


def certificate_identity(
    peercert: Mapping[str, Any] | None, trust_domain: str
) -> ServiceIdentity | None:
    """The service identity of a verified peer certificate in ``trust_domain``, or None
    when it names none there. A certificate naming two services names none: Consul
    never issues one, and guessing which was meant would be a way in."""
    found = [
        identity
        for identity in map(parse_service_uri, certificate_uris(peercert))
        if identity is not None and identity.trust_domain == trust_domain
    ]
    return found[0] if len(found) == 1 else None
