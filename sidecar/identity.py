"""Checking the identity the edge asserts, before the app sees it.

The edge signs, for every authenticated request, an identity token carrying the
identity headers it set (:mod:`mesh.identity.token`). Here a sidecar decides,
per inbound request, what identity its app may see:

===========================  ==========================  =========================
request carries              ``require: true``           ``require: false``
===========================  ==========================  =========================
a valid token                the identity headers are replaced by exactly those signed
a token that fails           401                         identity headers removed
identity headers, no token   401                         identity headers removed
neither                      passes (anonymous)          passes (anonymous)
===========================  ==========================  =========================

"Identity headers" are the managed names in every spelling (any case,
duplicates, ``_`` for ``-``). The edge's public keys come from a PEM file or
from the edge's JWKS (:class:`JwksEdgeKeys`), fetched again when a token names
a key not yet known (at most once per cooldown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
from multidict import CIMultiDict

from mesh.config.errors import ConfigError
from mesh.identity.headers import header_key, header_keys, managed_names_present, remove_managed
from mesh.identity.keys import (
    IdentityKeyError,
    PublicKey,
    load_public_key,
    public_key_from_jwk,
)
from mesh.identity.token import (
    UNKNOWN_KEY,
    IdentityAssertion,
    IdentityTokenError,
    verification_keys,
    verify_identity_token,
)
from sidecar.identity_config import SidecarIdentityConfig

log = logging.getLogger(__name__)

KeysByHeader = Mapping[str, PublicKey]


class EdgeKeys(Protocol):
    """Where the edge's public keys come from."""

    def current(self) -> KeysByHeader:
        """The known keys, indexed for :func:`mesh.identity.token.verify_identity_token`."""
        ...

    async def refresh(self) -> bool:
        """Try to learn new keys (if allowed now); True if the known keys changed."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class FileEdgeKeys:
    """One public key from a PEM file, read once at construction (ConfigError if unusable)."""

    def __init__(self, path: str) -> None:
        try:
            key = load_public_key(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(path, f"cannot read the edge's public key: {exc.strerror}") from None
        except IdentityKeyError as exc:
            raise ConfigError(path, f"edge public key: {exc}") from None
        self._keys = verification_keys([key])

    def current(self) -> KeysByHeader:
        return self._keys

    async def refresh(self) -> bool:
        return False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def keys_from_jwks(document: object) -> dict[str, PublicKey]:
    """The usable keys of a JWKS document (others skipped); ValueError if it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    keys: list[PublicKey] = []
    for member in document["keys"]:
        if isinstance(member, dict):
            with contextlib.suppress(IdentityKeyError):
                keys.append(public_key_from_jwk(member))
    return verification_keys(keys)


JwksFetch = Callable[[], Awaitable[object]]
"""Returns the decoded JWKS document; raises on any failure."""


@dataclass(frozen=True, slots=True)
class _Fetched:
    ok: bool
    """The fetch gave a usable key set."""
    changed: bool
    """... and it differs from the one known before."""


class JwksEdgeKeys:
    """The edge's keys from its JWKS URL: fetched at start, every ``refresh_s``, and on demand.

    A failed fetch keeps the keys already known (and is retried after
    ``cooldown_s``). :meth:`refresh` fetches at most once per ``cooldown_s``;
    concurrent callers share one fetch. ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_s: float = 300.0,
        cooldown_s: float = 5.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        fetch: JwksFetch | None = None,
    ) -> None:
        self.url = url
        self._refresh_s = refresh_s
        self._cooldown_s = cooldown_s
        self._timeout = timeout_s
        self._clock = clock
        self._fetch_document = fetch
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, PublicKey] = {}
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[_Fetched] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.fetches = 0
        self.failures = 0

    def current(self) -> KeysByHeader:
        return self._keys

    async def refresh(self) -> bool:
        task = self._inflight
        if task is None:
            last = self._last_attempt
            if last is not None and self._clock() - last < self._cooldown_s:
                return False
            task = self._start_fetch()
        return (await asyncio.shield(task)).changed

    async def start(self) -> None:
        if self._fetch_document is None:
            self._session = aiohttp.ClientSession()
        self._loop_task = asyncio.get_running_loop().create_task(self._keep_fresh())

    async def stop(self) -> None:
        for task in (self._loop_task, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()

    async def _keep_fresh(self) -> None:
        while True:
            fetched = await asyncio.shield(self._inflight or self._start_fetch())
            await asyncio.sleep(self._refresh_s if fetched.ok else self._cooldown_s)

    def _start_fetch(self) -> asyncio.Task[_Fetched]:
        self._last_attempt = self._clock()
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        return task

    async def _fetch(self) -> _Fetched:
        """Install the fetched keys, if any; never raises."""
        self.fetches += 1
        try:
            document = await self._get()
            keys = keys_from_jwks(document)
            if not keys:
                raise ValueError("no usable key")
        except Exception as exc:
            self.failures += 1
            log.warning("edge JWKS fetch from %s failed: %s", self.url, exc)
            return _Fetched(ok=False, changed=False)
        finally:
            self._inflight = None
        changed = keys.keys() != self._keys.keys()
        self._keys = keys
        return _Fetched(ok=True, changed=changed)

    async def _get(self) -> object:
        if self._fetch_document is not None:
            return await self._fetch_document()
        assert self._session is not None, "start() first"
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with self._session.get(self.url, timeout=timeout, allow_redirects=False) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            return await resp.json(content_type=None)


@dataclass
class IdentityStats:
    """Counters for the sidecar's ``/identity`` admin view."""

    verified: int = 0
    anonymous: int = 0
    refused: int = 0
    stripped: int = 0


class InboundIdentity:
    """Makes the identity headers of an inbound request match the edge's signature."""

    def __init__(
        self,
        keys: EdgeKeys,
        *,
        require: bool,
        headers: Iterable[str],
        token_header: str,
        issuer: str,
        leeway_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._require = require
        self._managed = header_keys(headers)
        self._token_header = token_header
        self._token_key = header_key(token_header)
        self._all = self._managed | {self._token_key}
        self._issuer = issuer
        self._leeway = leeway_s
        self._clock = clock
        self.stats = IdentityStats()

    async def apply(self, headers: CIMultiDict[str], request_id: str) -> str | None:
        """Edit ``headers`` (what the app will get); return a refusal reason, or None to pass.

        On None, ``headers`` holds either no identity at all, or exactly the
        identity headers of a valid token plus that token (one copy).
        """
        tokens = [
            value
            for name in managed_names_present(headers, frozenset({self._token_key}))
            for value in headers.getall(name)
        ]
        if not tokens:
            if not managed_names_present(headers, self._managed):
                self.stats.anonymous += 1
                return None
            return self._fail(headers, "identity headers without an edge signature")
        if len(tokens) > 1:
            return self._fail(headers, "more than one identity token")
        try:
            assertion = await self._verify(tokens[0])
        except IdentityTokenError as exc:
            return self._fail(headers, f"identity token refused: {exc.reason}")
        if assertion.request_id != request_id:
            return self._fail(headers, "identity token refused: request id mismatch")
        signed = header_keys(name for name, _ in assertion.headers)
        remove_managed(headers, self._all | signed)
        for name, value in assertion.headers:
            headers[name] = value
        headers[self._token_header] = tokens[0]
        self.stats.verified += 1
        return None

    async def _verify(self, token: str) -> IdentityAssertion:
        try:
            return self._check(token, self._keys.current())
        except IdentityTokenError as exc:
            # A key the edge started using since the last fetch: learn it (rate-limited).
            if exc.reason != UNKNOWN_KEY or not await self._keys.refresh():
                raise
        return self._check(token, self._keys.current())

    def _check(self, token: str, keys: KeysByHeader) -> IdentityAssertion:
        return verify_identity_token(
            token, keys, issuer=self._issuer, now=self._clock(), leeway_s=self._leeway
        )

    def _fail(self, headers: CIMultiDict[str], reason: str) -> str | None:
        if self._require:
            self.stats.refused += 1
            return reason
        remove_managed(headers, self._all)
        self.stats.stripped += 1
        log.debug("identity removed: %s", reason)
        return None


def edge_keys(config: SidecarIdentityConfig) -> EdgeKeys:
    """The key source ``config`` names (it must be enabled). Raises ConfigError for a bad file."""
    if config.edge_public_key_file is not None:
        return FileEdgeKeys(config.edge_public_key_file)
    if config.edge_jwks_url is None:
        raise ValueError("identity check is not enabled")
    return JwksEdgeKeys(
        config.edge_jwks_url, refresh_s=config.jwks_refresh, cooldown_s=config.jwks_cooldown
    )


def inbound_identity(config: SidecarIdentityConfig, keys: EdgeKeys) -> InboundIdentity:
    """The check ``config`` describes, with ``keys``."""
    return InboundIdentity(
        keys,
        require=config.require,
        headers=config.headers,
        token_header=config.token_header,
        issuer=config.issuer,
        leeway_s=config.leeway,
    )
