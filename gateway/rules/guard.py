"""The public listener's network rules, decided from memory before anything else (docs/protection.md):
the allow list of client networks (kept in Postgres, default everyone), ``protection.deny_ips``,
and blocked clients (``protection.block_after``, ``.block_seconds``, ``.never_block``).

``check`` runs on every request but ``/health``, before a key is looked at: with the defaults
(everyone allowed, nothing denied, nothing blocked) it is two attribute reads; otherwise one
cached verdict per address (allowed, block key, exempt) and one dict lookup. ``refused`` counts
a refusal of the request path (gateway.decide) towards a block. Changes arrive from
gateway.rules.guardsync (the database, other workers and instances); the blocks this worker
starts wait in ``started`` for it to store and announce them.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable

from gateway import errors
from gateway.config import Settings
from gateway.rules.blocks import Ban, BlockTable, RefusalCounter, counts, reason
from gateway.rules.clientip import parse_networks
from gateway.rules.limits import Limit, parse_limit
from gateway.rules.network import EVERYONE, Networks, address_value

VERDICTS_MAX = 10_000  # addresses whose verdict is remembered; then the memory starts again
Verdict = tuple[bool, "str | None"]  # (allowed by the networks, block key; None: never blocked or counted)


def _key(version: int, value: int) -> str:
    if version == 4:
        return str(ipaddress.IPv4Address(value))
    return f"{ipaddress.IPv6Address(value >> 64 << 64)}/64"


class Guard:
    """One worker's network rules and blocks."""

    def __init__(self, rule: Limit | None = None, block_seconds: float = 600, deny: Networks = Networks(),
                 exempt: Networks = Networks()) -> None:
        self.rule = rule
        self.block_seconds = block_seconds
        self.deny = deny
        self.exempt = exempt  # protection.never_block and server.trusted_proxies
        self.allow = EVERYONE
        self.open = not deny  # everyone allowed and nobody denied: only blocks are checked
        self.blocks = BlockTable()
        self.counter = RefusalCounter(rule) if rule is not None else None
        self.started: list[Ban] = []  # blocks this worker started, not yet stored
        self.answered = 0  # requests answered CLIENT_BLOCKED, not yet added to the metric
        self.on_change: list[Callable[[], None]] = []  # told when the allow list or the blocks change
        self._verdicts: dict[str, Verdict] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "Guard":
        p = settings.protection
        exempt = parse_networks(p.never_block) + parse_networks(settings.server.trusted_proxies)
        return cls(parse_limit(p.block_after) if p.block_after else None, p.block_seconds, Networks.parse(p.deny_ips),
                   Networks(exempt))

    # --- the request path ---------------------------------------------------------------------------

    def check(self, client_ip: str, now: float | None = None) -> None:
        """Raise the network's 403 or the block's 429 for this client, or return."""
        if self.open and not self.blocks:
            return
        allowed, key = self._verdicts.get(client_ip) or self._verdict(client_ip)
        if not allowed:
            raise errors.FORBIDDEN_NETWORK()
        if key is not None and self.blocks:
            now = time.time() if now is None else now
            ends = self.blocks.until(key, now)
            if ends is not None:
                raise errors.CLIENT_BLOCKED(headers=[(b"retry-after", b"%d" % math.ceil(ends - now))])

    def refused(self, client_ip: str, spec: errors.ErrorSpec, credentials_sent: bool, now: float | None = None) -> bool:
        """A request was refused with ``spec``: count it towards a block if it counts (and start the
        block at the threshold). True when the refusal was a block's answer (the caller writes no
        access line for it: ``answered`` counts it)."""
        if spec is errors.CLIENT_BLOCKED:
            self.answered += 1
            return True
        counter = self.counter
        if counter is None or spec is errors.FORBIDDEN_NETWORK or not counts(spec.code, credentials_sent):
            return False
        key = (self._verdicts.get(client_ip) or self._verdict(client_ip))[1]
        if key is None or key in self.blocks:
            return False
        now = time.time() if now is None else now
        n = counter.add(key, spec.code, now)
        if n >= counter.rule.count:
            self.start(key, n, spec.code, now)
        return False

    def _verdict(self, client_ip: str) -> Verdict:
        parsed = address_value(client_ip)
        if parsed is None:  # no address (a Unix socket's peer): only an open listener answers it
            verdict: Verdict = (self.open, None)
        else:
            version, value = parsed
            allowed = self.allow.contains(version, value) and not self.deny.contains(version, value)
            # An IPv4 address inet_pton read is already in its one spelling; a mapped one is not.
            key = client_ip if version == 4 and ":" not in client_ip else _key(version, value)
            verdict = (allowed, None if self.exempt.contains(version, value) else key)
        if len(self._verdicts) >= VERDICTS_MAX:
            self._verdicts.clear()
        self._verdicts[client_ip] = verdict
        return verdict

    # --- blocks -------------------------------------------------------------------------------------

    def start(self, address: str, refusals: int, last_code: str, now: float) -> None:
        """Block ``address`` in this worker now; gateway.rules.guardsync stores and announces it."""
        if self.rule is None or self.blocks.until(address, now) is not None:
            return
        ban = Ban(address, now, now + self.block_seconds, reason(refusals, self.rule, last_code), refusals)
        self.blocks.add(address, ban.ends_at, now)
        if len(self.started) < self.blocks.max_size:
            self.started.append(ban)
        self._changed()

    def banned(self, bans: list[tuple[str, float]], now: float) -> None:
        """Blocks started elsewhere (another worker or instance): ``(address, ends)`` each."""
        for address, ends in bans:
            self.blocks.add(address, ends, now)
        self._changed()

    def lifted(self, addresses: list[str]) -> None:
        """Blocks lifted over the admin API or the CLI: the addresses start again from nothing."""
        for address in addresses:
            self.blocks.remove(address)
            if self.counter is not None:
                self.counter.forget(address)
        gone = set(addresses)
        self.started = [b for b in self.started if b.address not in gone]
        self._changed()

    def replace_bans(self, bans: list[Ban], now: float) -> None:
        """Every block as the database has it (at start, and when a check finds it changed), and the
        ones this worker started that are not stored yet."""
        self.blocks.replace(bans + self.started, now)
        self._changed()

    # --- the allow list -----------------------------------------------------------------------------

    def set_allow(self, allow: Networks) -> None:
        full = allow.covers(4) and allow.covers(6)
        self.allow = EVERYONE if full else allow
        self.open = full and not self.deny
        self._verdicts = {}
        self._changed()

    def _changed(self) -> None:
        for fn in self.on_change:
            fn()
