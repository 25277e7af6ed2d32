"""Blocking abusive clients, the parts decided from memory (docs/protection.md, "Blocking
abusive clients"): which refusals count, a worker's count of refusals per client address, and
the table of blocked addresses.

Addresses are ``gateway.rules.network.block_key``'s: an IPv4 address, or an IPv6 /64. Pure
data structures, each bounded; gateway.rules.guard puts them to work and
gateway.rules.guardsync shares them between workers and instances.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.rules.limits import Limit

# The refusals that count towards ``protection.block_after``, by ``sb-error-code``: what a
# scanner, a credential stuffer or a misbehaving bot earns. Not counted: rate limits and
# quotas (a valid key that is busy), no route (404), the listener's own 400/408/431, upstream
# failures, and the guard's own answers (CLIENT_BLOCKED, a refused network).
COUNTED = frozenset({
    "UNAUTHORIZED_MISSING_API_KEY",
    "UNAUTHORIZED_INVALID_API_KEY",
    "UNAUTHORIZED_INVALID_API_KEY_TYPE",
    "UNAUTHORIZED_LEGACY_API_KEY_DISABLED",
    "UNAUTHORIZED_CONFLICTING_API_KEYS",
    "UNAUTHORIZED_INVALID_AUTHORIZATION",
    "UNAUTHORIZED_API_KEY_EXPIRED",
    "UNAUTHORIZED_INVALID_JWT",
    "UNAUTHORIZED_DASHBOARD",  # only with credentials sent: see ``counts``
    "FORBIDDEN_ROUTE",
    "FORBIDDEN_ORIGIN",
    "FORBIDDEN_IP",  # a key's allowed_ips (the network rules' own FORBIDDEN_IP is never counted)
    "FORBIDDEN_SERVICE",
    "FORBIDDEN_RESOURCE",
    "FORBIDDEN_METHOD",
    "BAD_PATH",  # encoded slashes and dot segments: path traversal probes
})


def counts(code: str, credentials_sent: bool) -> bool:
    """Does a refusal with this code count? The dashboard's 401 counts only when a username and
    password were sent (a browser's first visit asks without them: that is no attack)."""
    if code == "UNAUTHORIZED_DASHBOARD":
        return credentials_sent
    return code in COUNTED


@dataclass(frozen=True, slots=True)
class Ban:
    """A block: the address (IPv4, or IPv6 /64), when it started and ends (epoch seconds), why."""

    address: str
    started_at: float
    ends_at: float
    reason: str
    refusals: int


def reason(refusals: int, rule: Limit, last_code: str) -> str:
    """Why a block started, as the admin API, the CLI and the page show it."""
    return f"{refusals} refused requests (block_after {rule.text}); the last: {last_code}"


MAX_BLOCKS = 100_000


class BlockTable:
    """Blocked addresses and when each block ends. At most ``max_size``: expired blocks leave
    from the oldest as new ones come (and on lookup); when every one is still running, the
    oldest is dropped from memory (it stays in Postgres, and a full reload brings it back if
    there is room)."""

    __slots__ = ("_ends", "max_size")

    def __init__(self, max_size: int = MAX_BLOCKS) -> None:
        self._ends: dict[str, float] = {}  # in the order blocks were added: about the order they end
        self.max_size = max_size

    def __len__(self) -> int:
        return len(self._ends)

    def __contains__(self, address: str) -> bool:
        return address in self._ends

    def until(self, address: str, now: float) -> float | None:
        """When the block on ``address`` ends, or None (none, or over: then forgotten)."""
        ends = self._ends.get(address)
        if ends is None:
            return None
        if ends <= now:
            del self._ends[address]
            return None
        return ends

    def add(self, address: str, ends: float, now: float) -> None:
        self._ends.pop(address, None)
        if ends <= now:
            return
        self.expire(now)
        if len(self._ends) >= self.max_size:
            del self._ends[next(iter(self._ends))]
        self._ends[address] = ends

    def remove(self, address: str) -> bool:
        return self._ends.pop(address, None) is not None

    def expire(self, now: float) -> None:
        """Drop the blocks that ended, from the oldest, up to the first still running."""
        ends = self._ends
        while ends:
            first = next(iter(ends))
            if ends[first] > now:
                return
            del ends[first]

    def replace(self, bans: list[Ban], now: float) -> None:
        self._ends = {}
        for ban in sorted(bans, key=lambda b: b.ends_at):
            self.add(ban.address, ban.ends_at, now)


MAX_PENDING = 100_000


class RefusalCounter:
    """One worker's refused requests per address: ``pending``, counted since its last exchange
    with the shared store, ``sending``, what the exchange under way carries, and ``known``, the
    totals over the window the last exchange read back for the addresses it sent. It holds only
    the addresses refused since the last exchange, so an address that goes quiet costs nothing
    from the next exchange on. At most ``max_pending`` addresses between two exchanges; beyond
    that, refusals from new addresses are not counted until the next one (a tenth of a second at
    the default ``limits.sync_ms``)."""

    __slots__ = ("rule", "pending", "sending", "last", "known", "known_at", "since", "max_pending")

    def __init__(self, rule: Limit, max_pending: int = MAX_PENDING) -> None:
        self.rule = rule
        self.pending: dict[str, int] = {}
        self.sending: dict[str, int] = {}  # taken, not yet in ``known``: still counted
        self.last: dict[str, str] = {}  # address -> the code of its last refusal counted
        self.known: dict[str, int] = {}
        self.known_at = 0.0  # when the store last gave totals
        self.since: float | None = None  # when the oldest pending refusal was counted
        self.max_pending = max_pending

    def add(self, address: str, code: str, now: float) -> int:
        """Count a refusal; the address's count over the window as far as this worker knows."""
        if self.known and now - self.known_at > self.rule.window:
            self.known = {}  # no exchange for a window (nothing refused meanwhile): those totals are past
        n = self.pending.get(address)
        if n is None:
            if len(self.pending) >= self.max_pending:
                return self.known.get(address, 0) + self.sending.get(address, 0)
            if self.since is None:
                self.since = now
            n = 0
        self.pending[address] = n + 1
        self.last[address] = code
        return self.known.get(address, 0) + self.sending.get(address, 0) + n + 1

    def take(self) -> tuple[dict[str, int], dict[str, str], float | None]:
        """What to send to the store: the pending counts, each address's last code, and when the
        oldest of them was counted (for ``give_back``)."""
        taken = self.pending, self.last, self.since
        self.sending = self.pending
        self.pending, self.last, self.since = {}, {}, None
        return taken

    def settle(self, totals: dict[str, int], now: float) -> None:
        """The store's totals for the addresses just sent (what was sent included), but for those
        whose block was lifted meanwhile (``forget``): they start again from nothing."""
        sent = self.sending
        self.known = {address: n for address, n in totals.items() if address in sent}
        self.known_at, self.sending = now, {}

    def give_back(self, pending: dict[str, int], last: dict[str, str], since: float | None, now: float) -> None:
        """The exchange failed: counts go on in this worker alone, from the store's last totals
        while they are less than a window old. What it counted is kept for at most one window (a
        fixed window, then, not a sliding one), never beyond ``max_pending``."""
        self.sending = {}
        if now - self.known_at > self.rule.window:
            self.known = {}
        if since is not None and now - since > self.rule.window:
            return
        for address, n in pending.items():
            if address in self.pending or len(self.pending) < self.max_pending:
                self.pending[address] = self.pending.get(address, 0) + n
                self.last.setdefault(address, last.get(address, ""))
        if since is not None and (self.since is None or since < self.since):
            self.since = since

    def forget(self, address: str) -> None:
        """A block lifted: the address starts again from nothing."""
        self.pending.pop(address, None)
        self.sending.pop(address, None)
        self.last.pop(address, None)
        self.known.pop(address, None)
