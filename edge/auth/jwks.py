"""The edge's cached copy of the auth service's JSON Web Key Set.

Fetch policy, in one place:

- Keys are held by kid. The set is refreshed in the background once
  ``refresh_ahead_fraction`` of its Cache-Control max-age has passed, so requests
  never wait for a routine refresh.
- A kid the set does not know triggers a refetch, *single-flight* (all requests
  waiting for keys share one fetch) and *at most one fetch per cooldown*, counted
  from the start of the previous fetch of any kind. A flood of made-up kids
  therefore costs at most one fetch per ``cooldown_s``, whatever its size.
- When a fetch fails, or returns a document with no usable key, the last good
  set keeps serving (stale-if-error), for at most ``max_stale_s`` past its
  max-age if that is set, and :meth:`JwksCache.age` shows how old it is.

The cooldown trade-off: a key published within ``cooldown_s`` after the previous
fetch is not seen until that cooldown has run out (the first token carrying it
after that fetches at once). An issuer that rotates keys should therefore
publish the new key at least ``cooldown_s`` (plus the edge's max-age, to be
safe) before signing with it; one that signs at once with a fresh key (as the
demo service does) sees its first tokens refused for up to ``cooldown_s`` only
if the edge fetched within that window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from edge.auth.jws_header import DEFAULT_KID_PATTERN
from edge.auth.keys import KeysUnavailable, UnusableKey, VerificationKey, verification_key_from_jwk
from mesh.config.safe_regex import RegexSyntaxError, SafeRegex, compile_safe_regex

log = logging.getLogger(__name__)

_DEFAULT_KID = compile_safe_regex(DEFAULT_KID_PATTERN)


@dataclass(frozen=True, slots=True)
class JwksDocument:
    """What a fetch returns: the decoded JSON body and Cache-Control max-age (None if absent)."""

    body: object
    max_age_s: float | None = None


JwksFetch = Callable[[], Awaitable[JwksDocument]]
"""Fetches the current key set; raises any exception on failure."""


class JwksError(ValueError):
    """A JWKS document that is unusable as a whole (the previous set is kept)."""


@dataclass(frozen=True, slots=True)
class RejectedKey:
    """A member of the JWKS that was skipped: its position, its kid if well-formed, and why."""

    index: int
    kid: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class KeySet:
    """The usable keys of one JWKS document by kid, and the members skipped."""

    keys: Mapping[str, VerificationKey]
    rejected: tuple[RejectedKey, ...] = ()


def parse_jwks(body: object, *, kid_pattern: SafeRegex | None = None, max_keys: int = 64) -> KeySet:
    """Parse a decoded JWKS document (RFC 7517 §5) into a KeySet.

    Members that cannot be used are skipped and recorded with a reason: not an
    object, missing or malformed kid, duplicate kid (the first usable one wins,
    so a later member cannot shadow it), anything :func:`verification_key_from_jwk`
    refuses, and members past ``max_keys``. A kid must fully match ``kid_pattern``
    (default :data:`~edge.auth.jws_header.DEFAULT_KID_PATTERN`). Raises JwksError if
    the document is not ``{"keys": [...]}`` or has no usable key at all.
    """
    pattern = kid_pattern or _DEFAULT_KID
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise JwksError("not a JWK set")
    keys: dict[str, VerificationKey] = {}
    rejected: list[RejectedKey] = []
    for index, member in enumerate(body["keys"]):
        if index >= max_keys:
            rejected.append(RejectedKey(index, None, "too many keys"))
            continue
        if not isinstance(member, dict):
            rejected.append(RejectedKey(index, None, "not an object"))
            continue
        kid = member.get("kid")
        if kid is None:
            rejected.append(RejectedKey(index, None, "missing kid"))
            continue
        if not isinstance(kid, str) or not pattern.fullmatch(kid):
            rejected.append(RejectedKey(index, None, "invalid kid"))
            continue
        if kid in keys:
            rejected.append(RejectedKey(index, kid, "duplicate kid"))
            continue
        try:
            keys[kid] = verification_key_from_jwk(member, kid=kid)
        except UnusableKey as exc:
            rejected.append(RejectedKey(index, kid, str(exc)))
    if not keys:
        raise JwksError("no usable keys")
    return KeySet(keys=MappingProxyType(keys), rejected=tuple(rejected))


@dataclass(frozen=True, slots=True)
class JwksCacheSettings:
    """How the key set is cached and refreshed. Validated on construction.

    - ``cooldown_s``: minimum time between two fetch starts, for any reason
      other than an explicit :meth:`JwksCache.refresh`.
    - ``default_max_age_s``: lifetime of a set served without max-age.
    - ``max_max_age_s``: cap on a served max-age (a year-long max-age would
      otherwise stop rotation from ever being noticed by refresh).
    - ``refresh_ahead_fraction``: refresh in the background once this fraction
      of the max-age has passed.
    - ``max_stale_s``: how long past its max-age a set may serve while
      refreshes fail; None means indefinitely (availability over revocation).
    - ``fetch_timeout_s``: a fetch that takes longer counts as failed.
    - ``kid_pattern``: members whose kid does not fully match are skipped (RE2
      syntax, :mod:`mesh.config.safe_regex`).
    """

    cooldown_s: float = 30.0
    default_max_age_s: float = 300.0
    max_max_age_s: float = 86_400.0
    refresh_ahead_fraction: float = 0.8
    max_stale_s: float | None = None
    fetch_timeout_s: float = 10.0
    kid_pattern: str = DEFAULT_KID_PATTERN

    def __post_init__(self) -> None:
        if self.cooldown_s <= 0:
            raise ValueError("cooldown_s must be positive")
        if not 0 <= self.default_max_age_s <= self.max_max_age_s:
            raise ValueError("default_max_age_s must be within [0, max_max_age_s]")
        if not 0 < self.refresh_ahead_fraction <= 1:
            raise ValueError("refresh_ahead_fraction must be in (0, 1]")
        if self.max_stale_s is not None and self.max_stale_s < 0:
            raise ValueError("max_stale_s must be non-negative or None")
        if self.fetch_timeout_s <= 0:
            raise ValueError("fetch_timeout_s must be positive")
        try:
            compile_safe_regex(self.kid_pattern)
        except RegexSyntaxError as exc:
            raise ValueError(f"kid_pattern is not a valid regular expression: {exc}") from None


@dataclass(frozen=True, slots=True)
class JwksStats:
    """A snapshot for metrics and the admin listener.

    ``fetches`` counts fetch attempts, ``failures`` the failed ones (errors,
    timeouts, unusable documents). ``unknown_kid_fetches`` counts fetches an
    unknown kid started, ``unknown_kid_refused`` the unknown kids answered
    without a fetch because of the cooldown. ``age_s`` is the age of the served
    set (None before the first success); ``stale`` is true past its max-age.
    """

    fetches: int
    failures: int
    unknown_kid_fetches: int
    unknown_kid_refused: int
    keys: int
    age_s: float | None
    stale: bool
    last_error: str | None
    rejected: tuple[RejectedKey, ...]


class JwksCache:
    """A :class:`edge.auth.keys.KeySource` backed by a periodically fetched JWKS.

    Create it inside the event loop that will use it. Call :meth:`refresh` at
    start-up to fail fast (optional: the first lookup fetches anyway) and
    :meth:`aclose` on shutdown to cancel a fetch in flight. ``on_fetch(ok,
    seconds)``, when given, is called once per fetch that ends (not one that is
    cancelled), e.g. to count it in metrics; it must not raise.
    """

    def __init__(
        self,
        fetch: JwksFetch,
        clock: Callable[[], float],
        settings: JwksCacheSettings | None = None,
        *,
        on_fetch: Callable[[bool, float], None] | None = None,
    ) -> None:
        self._fetch_document = fetch
        self._on_fetch = on_fetch
        self._clock = clock
        self._settings = settings or JwksCacheSettings()
        self._kid_pattern = compile_safe_regex(self._settings.kid_pattern)
        self._keyset: KeySet | None = None
        self._fetched_at: float | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._last_attempt_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._fetches = 0
        self._failures = 0
        self._unknown_kid_fetches = 0
        self._unknown_kid_refused = 0
        self._last_error: str | None = None

    async def get_key(self, kid: str) -> VerificationKey | None:
        """The key with ``kid``, or None if it is unknown after the allowed refetch.

        A known kid returns at once (possibly starting a background refresh).
        An unknown kid joins the fetch in flight, or starts one if the cooldown
        allows, or returns None at once. Raises KeysUnavailable when there is no
        servable key set (never fetched, or older than ``max_stale_s`` allows)
        and fetching did not produce one.
        """
        now = self._clock()
        keyset = self._servable(now)
        if keyset is not None:
            key = keyset.keys.get(kid)
            if key is not None:
                if now >= self._refresh_at and self._may_fetch(now):
                    self._start_fetch(now)  # background: this request does not wait
                return key

        task = self._inflight
        if task is None:
            if not self._may_fetch(now):
                if keyset is None:
                    raise KeysUnavailable("no JWKS available (fetch cooling down)")
                self._unknown_kid_refused += 1
                return None
            if keyset is not None:
                self._unknown_kid_fetches += 1
            task = self._start_fetch(now)
        # shield: a cancelled request must not cancel the fetch other requests share.
        await asyncio.shield(task)

        keyset = self._servable(self._clock())
        if keyset is None:
            raise KeysUnavailable("no JWKS available")
        return keyset.keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch now, ignoring the cooldown (joins a fetch in flight); True on success."""
        task = self._inflight or self._start_fetch(self._clock())
        failures_before = self._failures
        await asyncio.shield(task)
        return self._failures == failures_before and self._keyset is not None

    def age(self) -> float | None:
        """Seconds since the served key set was fetched; None if none ever was."""
        if self._fetched_at is None:
            return None
        return max(0.0, self._clock() - self._fetched_at)

    def stats(self) -> JwksStats:
        """Counters and state for metrics (see :class:`JwksStats`)."""
        now = self._clock()
        keyset = self._keyset
        return JwksStats(
            fetches=self._fetches,
            failures=self._failures,
            unknown_kid_fetches=self._unknown_kid_fetches,
            unknown_kid_refused=self._unknown_kid_refused,
            keys=len(keyset.keys) if keyset else 0,
            age_s=self.age(),
            stale=keyset is not None and now >= self._expires_at,
            last_error=self._last_error,
            rejected=keyset.rejected if keyset else (),
        )

    async def aclose(self) -> None:
        """Cancel a fetch in flight and wait for it to end."""
        task = self._inflight
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _servable(self, now: float) -> KeySet | None:
        if self._keyset is None:
            return None
        max_stale = self._settings.max_stale_s
        if max_stale is not None and now > self._expires_at + max_stale:
            return None
        return self._keyset

    def _may_fetch(self, now: float) -> bool:
        if self._inflight is not None:
            return False
        last = self._last_attempt_at
        return last is None or now - last >= self._settings.cooldown_s

    def _start_fetch(self, now: float) -> asyncio.Task[None]:
        self._last_attempt_at = now
        task = asyncio.get_running_loop().create_task(self._fetch_and_install())
        self._inflight = task
        return task

    async def _fetch_and_install(self) -> None:
        """Never raises (except on cancellation): failures keep the old set."""
        self._fetches += 1
        # A duration, so the monotonic clock (the injected one is for expiry).
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._settings.fetch_timeout_s):
                document = await self._fetch_document()
            keyset = parse_jwks(document.body, kid_pattern=self._kid_pattern)
        except Exception as exc:  # stale-if-error: whatever went wrong, keep serving
            self._failures += 1
            self._last_error = _describe(exc)
            log.warning("JWKS fetch failed, serving previous keys: %s", self._last_error)
            if self._on_fetch is not None:
                self._on_fetch(False, time.monotonic() - started)
            return
        finally:
            self._inflight = None
        self._install(keyset, document.max_age_s)
        if self._on_fetch is not None:
            self._on_fetch(True, time.monotonic() - started)

    def _install(self, keyset: KeySet, max_age_s: float | None) -> None:
        settings = self._settings
        max_age = settings.default_max_age_s if max_age_s is None else max_age_s
        max_age = min(max(max_age, 0.0), settings.max_max_age_s)
        now = self._clock()
        previous = self._keyset
        self._keyset = keyset
        self._fetched_at = now
        self._expires_at = now + max_age
        self._refresh_at = now + max_age * settings.refresh_ahead_fraction
        self._last_error = None
        if previous is not None and previous.rejected == keyset.rejected:
            return  # already reported; a refresh every few minutes should not repeat it
        for rejected in keyset.rejected:
            log.warning(
                "JWKS member %d (kid %s) skipped: %s",
                rejected.index,
                rejected.kid,
                rejected.reason,
            )


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:200]
