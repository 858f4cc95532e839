"""A listener's SSL context whose certificates can be replaced while it serves."""

from __future__ import annotations

import ssl
from collections.abc import Callable

Choose = Callable[[str | None], ssl.SSLContext]
"""``choose(server_name)``: the context for a ClientHello naming ``server_name`` (None:
the client sent no SNI). Runs inside OpenSSL's handshake: it must be cheap and never
raise (an exception aborts the handshake)."""


class SwappableServerContext:
    """The listener keeps :attr:`context` for good; its SNI callback, which OpenSSL
    calls for every ClientHello (with or without a server name), moves each new
    handshake to the context chosen by what :meth:`swap` or :meth:`swap_choice` gave
    last. Contexts are built whole before they are swapped in, so a half-replaced
    certificate and key can never be served; connections already established keep the
    certificate they got."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._choose: Choose = lambda _name: context
        context.sni_callback = self._select

    def swap(self, fresh: ssl.SSLContext) -> None:
        """New handshakes get ``fresh``, whatever server name they ask for."""
        self._choose = lambda _name: fresh

    def swap_choice(self, choose: Choose) -> None:
        """New handshakes get ``choose(server_name)``: one function, so that a set of
        contexts (one per certificate) is replaced by one assignment, never in part."""
        self._choose = choose

    def _select(
        self, connection: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext
    ) -> None:
        chosen = self._choose(name)
        if chosen is not context:
            connection.context = chosen
