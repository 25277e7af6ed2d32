"""The decision: from what a request carries to a refusal or to the credentials we forward.

SPEC section 6, steps 1 to 5, in order: find the key, identify it, apply the browser rule and
the route's policy, then settle ``Authorization`` (mint, pass a verified user JWT, or refuse).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway import apikeys
from gateway.browser import is_browser
from gateway.keyring import KeyEntry, KeyRing
from gateway.routes import Policy
from gateway.tokens import InvalidJwt, JwtVerifier, Minter


class Refusal(Exception):
    """An answer other than forwarding. Messages are fixed strings: never a key or token."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


MISSING = Refusal(401, "UNAUTHORIZED_MISSING_API_KEY", "No API key found in request",
                  "No `apikey` request header or url param was found.")
INVALID = Refusal(401, "UNAUTHORIZED_INVALID_API_KEY", "Invalid API key", "Double check your API key.")
BROWSER = Refusal(
    401, "UNAUTHORIZED_INVALID_API_KEY_TYPE", "Forbidden use of secret API key in browser",
    "Secret API keys can only be used in a protected environment and should never be used in a browser. "
    "Delete this secret API key immediately!",
)
SECRET_REQUIRED = Refusal(401, "UNAUTHORIZED_INVALID_API_KEY_TYPE", "Secret API key required",
                          "Only secret API keys can be used for this endpoint.")
CONFLICT = Refusal(401, "UNAUTHORIZED_CONFLICTING_API_KEYS", "Conflicting API keys",
                   "The `Authorization` header holds a different API key than `apikey`.")
BAD_AUTHORIZATION = Refusal(401, "UNAUTHORIZED_INVALID_AUTHORIZATION", "Invalid authorization header",
                            "Send `Authorization: Bearer <JWT>` or leave it out.")


@dataclass(slots=True)
class Grant:
    """What to forward. ``entry`` is None when a request with no key passes through untouched."""

    entry: KeyEntry | None
    token: str | None  # minted JWT of the key (apikey, x-api-key, sb-api-key upstream)
    authorization: str | None  # new Authorization value; None: leave the client's as it is
    role: str


@dataclass
class Authenticator:
    ring: KeyRing
    minter: Minter
    verifier: JwtVerifier
    project_ref: str
    checksum_ref: str

    async def check(
        self,
        policy: Policy,
        header_keys: list[str],
        query_keys: list[str],
        authorization: str | None,
        user_agent: str | None,
        sec_fetch: bool,
    ) -> Grant:
        key = _the_key(header_keys, query_keys)
        bearer, other_scheme = _bearer(authorization)
        if key is None:
            if policy is not Policy.OPTIONAL:
                raise MISSING
            if bearer is not None and apikeys.looks_like_key(bearer):
                key = bearer  # functions/storage: the bearer is the key (never forwarded as is)
            else:
                # Passed to the service untouched; a legacy key as bearer still obeys the legacy
                # switch and, for service_role, the browser rule.
                legacy = None if bearer is None else self._legacy_bearer_allowed(bearer)
                if legacy is not None and legacy.is_secret and is_browser(user_agent, sec_fetch):
                    raise BROWSER
                return Grant(None, None, None, "none")

        entry = await self._identify(key)
        browser = entry.is_secret and is_browser(user_agent, sec_fetch)
        if browser:
            raise BROWSER
        if policy is Policy.SECRET and not entry.is_secret:
            raise SECRET_REQUIRED
        token = self.minter.token_for(entry)
        self.ring.mark_used(entry)

        if bearer is None:
            if other_scheme and policy is not Policy.OPTIONAL:
                raise BAD_AUTHORIZATION
            # No Authorization (or, for functions/storage, another scheme left to the service).
            return Grant(entry, token, None if other_scheme else "Bearer " + token, entry.role)
        if bearer == key:
            return Grant(entry, token, "Bearer " + token, entry.role)
        if apikeys.looks_like_key(bearer):
            raise CONFLICT
        legacy = self._legacy_bearer_allowed(bearer)
        if legacy is not None:
            if legacy.is_secret and is_browser(user_agent, sec_fetch):
                raise BROWSER
            self.ring.mark_used(legacy)
            return Grant(entry, token, "Bearer " + self.minter.token_for(legacy), legacy.role)
        try:
            claims = await self.verifier.verify(bearer)
        except InvalidJwt as e:
            raise Refusal(401, "UNAUTHORIZED_INVALID_JWT", str(e), "Sign in again to get a fresh access token.") from None
        return Grant(entry, token, None, str(claims.get("role")))

    async def _identify(self, key: str) -> KeyEntry:
        if apikeys.looks_like_key(key):
            # A known key costs one SHA256 and a dict lookup. Only a key not in memory has its
            # checksum checked (malformed or bad checksum: no database lookup) and is fetched.
            key_hash = apikeys.hash_key(key)
            entry = self.ring.by_hash.get(key_hash)
            if entry is None:
                if apikeys.parse(key, self.checksum_ref) is None:
                    raise INVALID
                entry = await self.ring.fetch(key_hash)
                if entry is None:
                    raise INVALID
            return entry
        legacy = self._legacy_bearer_allowed(key)
        if legacy is None:
            raise INVALID
        return legacy

    def _legacy_bearer_allowed(self, token: str) -> KeyEntry | None:
        """The legacy entry if ``token`` is exactly a configured legacy key (refused while disabled)."""
        entry = self.ring.legacy_entry(token)
        if entry is not None and not self.ring.legacy.enabled:
            raise self.legacy_disabled()
        return entry

    def legacy_disabled(self) -> Refusal:
        changed = self.ring.legacy.changed_at
        since = f" since {changed.isoformat(timespec='seconds')}" if changed else ""
        return Refusal(
            401, "UNAUTHORIZED_LEGACY_API_KEY_DISABLED", "Legacy API keys are disabled",
            f"Legacy API keys (anon, service_role) have been disabled{since}. Use a publishable or secret key, "
            f"or re-enable them: `gateway legacy enable` or "
            f"PUT /v1/projects/{self.project_ref}/api-keys/legacy?enabled=true on the admin API.",
        )


def _the_key(header_keys: list[str], query_keys: list[str]) -> str | None:
    """The one key of the request: empty values count as missing, disagreement is invalid."""
    headers = [k for k in header_keys if k]
    queries = [k for k in query_keys if k]
    if len(headers) > 1 or len(queries) > 1:
        raise INVALID
    if headers and queries and headers[0] != queries[0]:
        raise INVALID
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
