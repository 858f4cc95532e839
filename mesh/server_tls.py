"""A listener's SSL context whose certificate can be replaced while it serves."""

from __future__ import annotations

import ssl


class SwappableServerContext:
    """The listener keeps :attr:`context` for good; its SNI callback, which OpenSSL
    calls for every ClientHello (with or without a server name), moves each new
    handshake to the context given to :meth:`swap` last. A context is built whole
    before it is swapped in, so a half-replaced certificate and key can never be
    served; connections already established keep the certificate they got."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._current = context
        context.sni_callback = self._select

    def swap(self, fresh: ssl.SSLContext) -> None:
        self._current = fresh

    def _select(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, context: ssl.SSLContext
    ) -> None:
        current = self._current
        if current is not context:
            connection.context = current
