"""The decision: from the credentials a request carries to a refusal or to what we forward.

The steps of docs/requests.md, in order: find the key, identify it, apply the browser rule and
the route's policy, then settle ``Authorization`` (mint, pass a verified user JWT, or refuse).
The dashboard route takes no key: ``DashboardLogin`` checks its HTTP basic auth instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.keys import apikeys
from gateway.keys.entries import KeyEntry
from gateway.keys.ring import KeyRing
from gateway.keys.tokens import InvalidJwt, JwtVerifier, Minter
from gateway.routes import Policy
from gateway.rules.browser import is_browser


class Credentials:
    """What a request carries that the decision reads; the browser signal computed once."""

    __slots__ = ("apikeys", "query_keys", "authorization", "authorizations", "user_agent", "sec_fetch", "_browser")

    def __init__(self, apikeys: list[str] | None = None, query_keys: list[str] | None = None,
                 authorization: str | None = None, user_agent: str | None = None, sec_fetch: bool = False) -> None:
        self.apikeys = apikeys if apikeys is not None else []
        self.query_keys = query_keys if query_keys is not None else []
        self.authorization = authorization
        self.authorizations = 0 if authorization is None else 1
        self.user_agent = user_agent
        self.sec_fetch = sec_fetch
        self._browser: bool | None = None

    @property
    def browser(self) -> bool:
        if self._browser is None:
            self._browser = is_browser(self.user_agent, self.sec_fetch)
        return self._browser


@dataclass(slots=True)
class Grant:
    """What to forward. ``entry`` is None when a request with no key passes through untouched."""

    entry: KeyEntry | None
    token: str | None  # minted JWT of the key (apikey, x-api-key, sb-api-key upstream)
    authorization: str | None  # new Authorization value; None: leave the client's as it is
    role: str
    claims: dict | None = None  # of a verified user JWT


NO_KEY = Grant(None, None, None, "none")  # never mutated
# The dashboard's: no token, and the client's Authorization dropped with nothing in its place
# (Envoy removes it on Studio's route; Kong's basic-auth hides it). Never mutated.
DASHBOARD_GRANT = Grant(None, None, "", "none")
WWW_AUTHENTICATE = [(b"www-authenticate", b'Basic realm="Supabase Studio", charset="UTF-8"')]


class DashboardLogin:
    """``dashboard.username`` and ``dashboard.password`` as HTTP basic auth in front of Studio:
    the credentials a request sends are compared with them by hash, in constant time; neither
    set, the dashboard is open (Studio's own login, if any, applies)."""

    __slots__ = ("digest",)

    def __init__(self, username: str | None, password: str | None) -> None:
        pair = None if username is None or password is None else f"{username}:{password}".encode()
        self.digest = None if pair is None else hashlib.sha256(pair).digest()

    def check(self, creds: Credentials) -> Grant:
        """The dashboard's grant, or 401 with ``WWW-Authenticate`` (a browser then asks)."""
        if self.digest is None:
            return DASHBOARD_GRANT
        sent = basic_credentials(creds.authorization) if creds.authorizations == 1 else None
        if hmac.compare_digest(hashlib.sha256(sent or b"").digest(), self.digest) and sent is not None:
            return DASHBOARD_GRANT
        raise errors.UNAUTHORIZED_DASHBOARD(headers=WWW_AUTHENTICATE)


def basic_credentials(authorization: str | None) -> bytes | None:
    """The ``user:password`` bytes of ``Authorization: Basic <base64>``, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        return base64.b64decode(value.strip().encode("latin-1"), validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class KeyHold:
    """The key that admitted a long-lived connection (a relayed WebSocket), as ``key_now`` needs
    it: the entry as granted and the SHA256 of an ``sb_`` key (None: a legacy key), never the
    plaintext; and whether a legacy key came as the bearer too (the legacy switch refuses it)."""

    entry: KeyEntry
    digest: bytes | None
    legacy_bearer: bool = False


class Need:
    """What a decision from memory still needs: a key's row (by hash) or a user JWT verified."""

    __slots__ = ("key_hash", "token")

    def __init__(self, key_hash: str | None, token: str | None) -> None:
        self.key_hash = key_hash
        self.token = token


@dataclass
class Authenticator:
    ring: KeyRing
    minter: Minter
    verifier: JwtVerifier
    project_ref: str
    checksum_ref: str
    digest: Callable[[str], bytes] = apikeys.digest  # the one SHA256 a request with a key costs

    async def check(self, policy: Policy, creds: Credentials) -> Grant:
        """The decision, with the I/O it may need (a key not in memory, a user JWT not seen before)."""
        resolved: dict[str, Any] = {}
        while True:
            decided = self.decide(policy, creds, resolved)
            if not isinstance(decided, Need):
                return decided
            if decided.key_hash is not None:
                resolved[decided.key_hash] = await self.ring.fetch(decided.key_hash)
            else:
                token = decided.token
                assert token is not None  # a Need names a key's hash or a token
                try:
                    resolved[token] = await self.verifier.verify(token)
                except InvalidJwt as e:
                    resolved[token] = e

    def decide(self, policy: Policy, creds: Credentials, resolved: dict[str, Any] | None = None) -> Grant | Need:
        """The decision from memory: a Grant, a refusal raised, or the one lookup it still needs
        (``resolved`` holds the answers of earlier ones). Nothing is recorded until a Grant."""
        if creds.authorizations > 1:
            raise errors.INVALID_AUTHORIZATION()  # which one would the upstream read? Not ours to guess.
        key = _the_key(creds.apikeys, creds.query_keys)
        bearer, other_scheme = _bearer(creds.authorization)
        # Open auth paths need no key, but one that is sent (supabase-js sends its key everywhere)
        # is checked and translated like on functions and storage: its plaintext never goes on.
        optional = policy is Policy.OPTIONAL or policy is Policy.OPEN or policy is Policy.KEY_OR_USER
        if key is None:
            if not optional:
                raise errors.MISSING_API_KEY()
            if bearer is None or not apikeys.looks_like_key(bearer):
                return self._without_key(policy, bearer, creds, resolved)
            key = bearer  # functions/storage: the bearer is the key (never forwarded as is)

        entry = self._identify(key, resolved)
        if isinstance(entry, Need):
            return entry
        unexpired(entry, time.time())
        if entry.is_secret and creds.browser:
            raise errors.SECRET_KEY_IN_BROWSER()
        if policy is Policy.SECRET and not entry.is_secret:
            raise errors.SECRET_KEY_REQUIRED()

        if bearer is None:
            if other_scheme and not optional:
                raise errors.INVALID_AUTHORIZATION()
            # No Authorization (or, for functions/storage, another scheme left to the service).
            token = self._use(entry)
            return Grant(entry, token, None if other_scheme else "Bearer " + token, entry.role)
        if bearer == key:
            token = self._use(entry)
            return Grant(entry, token, "Bearer " + token, entry.role)
        if apikeys.looks_like_key(bearer):
            raise errors.CONFLICTING_API_KEYS()
        legacy = self._legacy_allowed(bearer)
        if legacy is not None:
            if legacy.is_secret and creds.browser:
                raise errors.SECRET_KEY_IN_BROWSER()
            token = self._use(entry)
            return Grant(entry, token, "Bearer " + self._use(legacy), legacy.role)
        claims = self._user_claims(bearer, resolved)
        if isinstance(claims, Need):
            return claims
        assert claims is not None  # None comes only when not refusing
        return Grant(entry, self._use(entry), None, str(claims.get("role")), claims)

    def _without_key(self, policy: Policy, bearer: str | None, creds: Credentials,
                     resolved: dict[str, Any] | None) -> Grant | Need:
        """No key, where a key is optional: the client's ``Authorization`` goes to the service
        untouched, and the request counts as what its bearer is: a legacy key (which still obeys
        the legacy switch and the browser rule) under that key's limits, a verified user JWT
        under ``per_user``, anything else, or nothing, per client IP (``NO_KEY``)."""
        if bearer is None:
            if policy is Policy.KEY_OR_USER:  # a key or a user JWT is required: neither came
                raise errors.MISSING_API_KEY()
            return NO_KEY
        legacy = self._legacy_allowed(bearer)
        if legacy is not None:
            if legacy.is_secret and creds.browser:
                raise errors.SECRET_KEY_IN_BROWSER()
            self.ring.usage.mark(legacy)
            return Grant(legacy, None, None, legacy.role)
        claims = self._user_claims(bearer, resolved, refuse=policy is Policy.KEY_OR_USER)
        if claims is None or isinstance(claims, Need):
            return NO_KEY if claims is None else claims  # None: not a JWT we accept, the service judges it
        return Grant(None, None, None, str(claims.get("role")), claims)

    # --- a long-lived connection judged again: the rules above, from memory ------------------------

    def hold(self, creds: Credentials, grant: Grant) -> KeyHold | None:
        """What ``key_now`` needs of the key that ``grant`` was made for (None: no key)."""
        entry = grant.entry
        if entry is None:
            return None
        key = _the_key(creds.apikeys, creds.query_keys)
        bearer, _ = _bearer(creds.authorization)
        if key is None:
            key = bearer  # functions/storage: the bearer was the key
        digest = apikeys.digest(key) if key is not None and entry.type != "legacy" else None
        legacy_bearer = bearer is not None and bearer != key and self.ring.legacy_entry(bearer) is not None
        return KeyHold(entry, digest, legacy_bearer)

    def key_now(self, hold: KeyHold, now: float) -> KeyEntry | None:
        """The held key as ``decide`` would find it now, from memory: raises the refusal a request
        with it would get (deleted, or its hash now another key's: invalid; expired; a legacy key
        while legacy keys are disabled); None while its row is read again after a change (the
        change's notification decides). Nothing is recorded as used, nothing is minted."""
        current: KeyEntry | None
        if hold.digest is None:
            self._legacy_on()
            current = hold.entry
        else:
            current = self.ring.by_hash.get_digest(hold.digest)
            if current is None and self.ring.refetching(hold.digest):
                return None
            if current is None or current.id != hold.entry.id:
                raise errors.INVALID_API_KEY()
        if hold.legacy_bearer:
            self._legacy_on()
        unexpired(current, now)
        return current

    def _use(self, entry: KeyEntry) -> str:
        """The entry's minted JWT, its use recorded."""
        self.ring.usage.mark(entry)
        return self.minter.token_for(entry)

    def _user_claims(self, bearer: str, resolved: dict[str, Any] | None,
                     refuse: bool = True) -> dict[str, Any] | Need | None:
        """The claims of a verified user JWT, the verification it needs first, or for a JWT we do
        not accept a 401 (``refuse``) or None."""
        claims = self.verifier.known(bearer)
        if claims is not None:
            return claims
        got = None if resolved is None else resolved.get(bearer)
        if got is None:
            return Need(None, bearer)
        if isinstance(got, InvalidJwt):
            if not refuse:
                return None
            raise errors.INVALID_JWT(message=str(got))
        return got

    def _identify(self, key: str, resolved: dict[str, Any] | None) -> KeyEntry | Need:
        if apikeys.looks_like_key(key):
            # A known key costs one SHA256 and a lookup in memory. Only a key not in memory has its
            # checksum checked (malformed or bad checksum: no database lookup) and is fetched.
            digest = self.digest(key)
            entry = self.ring.by_hash.get_digest(digest)
            if entry is None:
                if apikeys.parse(key, self.checksum_ref) is None:
                    raise errors.INVALID_API_KEY()
                key_hash = apikeys.b64url(digest)
                if resolved is None or key_hash not in resolved:
                    return Need(key_hash, None)
                entry = resolved[key_hash]
                if entry is None:
                    raise errors.INVALID_API_KEY()
            return entry
        legacy = self._legacy_allowed(key)
        if legacy is None:
            raise errors.INVALID_API_KEY()
        return legacy

    def _legacy_allowed(self, token: str) -> KeyEntry | None:
        """The legacy entry if ``token`` is exactly a configured legacy key (refused while disabled)."""
        entry = self.ring.legacy_entry(token)
        if entry is not None:
            self._legacy_on()
        return entry

    def _legacy_on(self) -> None:
        """The legacy switch: legacy keys are refused while it is off."""
        if not self.ring.switches.legacy.enabled:
            raise self.legacy_disabled()

    def legacy_disabled(self) -> errors.Refusal:
        changed = self.ring.switches.legacy.changed_at
        since = f" since {changed.isoformat(timespec='seconds')}" if changed else ""
        return errors.LEGACY_KEYS_DISABLED(
            f"Legacy API keys (anon, service_role) have been disabled{since}. Use a publishable or secret key, "
            f"or re-enable them: `gateway legacy enable` or "
            f"PUT /v1/projects/{self.project_ref}/api-keys/legacy?enabled=true on the admin API."
        )


def unexpired(entry: KeyEntry, now: float) -> None:
    """The expiry rule: from its ``expires_at`` on, a key is refused."""
    if entry.expires_at is not None and now >= entry.expires_at:
        raise errors.API_KEY_EXPIRED()


def _the_key(header_keys: list[str], query_keys: list[str]) -> str | None:
    """The one key of the request: empty values count as missing, disagreement is invalid."""
    headers = [k for k in header_keys if k]
    queries = [k for k in query_keys if k]
    if len(headers) > 1 or len(queries) > 1:
        raise errors.INVALID_API_KEY()
    if headers and queries and headers[0] != queries[0]:
        raise errors.INVALID_API_KEY()
    if headers:
        return headers[0]
    return queries[0] if queries else None


def _bearer(authorization: str | None) -> tuple[str | None, bool]:
    """``(bearer token, other scheme present)``."""
    if not authorization:
        return None, False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None, True
    value = value.strip()
    return (value or None), not value
