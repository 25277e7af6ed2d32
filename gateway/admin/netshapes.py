"""What the admin API's network-bans and network-restrictions take and give, in the Management
API's shapes (checked against the Supabase CLI 2.117.0 and supabase-management-js 2.0.2,
tests/compat/test_management_clients.py), web-free so that the CLI uses the same rules.

The Management API lists bans as ``banned_ipv4_addresses`` (strings) and lifts them with
``ipv4_addresses``; both carry IPv6 addresses too here (an IPv6 client is blocked by its /64,
listed as ``2001:db8:1:2::/64``; any address inside it lifts it). When and why each block started
are in ``bans``, a field of the gateway's own that clients ignore. Errors name a list's entry by
its position, never by its text.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from gateway.keys.shapes import InvalidInput
from gateway.rules.banstore import AllowList
from gateway.rules.blocks import Ban
from gateway.rules.network import block_key, canonical_cidrs

MAX_ADDRESSES = 1000  # in one lift


def lift_key(text: object) -> str | None:
    """The block an address (or a listed block: an IPv4 /32, an IPv6 /64) names, or None."""
    if not isinstance(text, str) or "%" in text:
        return None
    text = text.strip()
    if "/" not in text:
        return block_key(text)
    try:
        network = ipaddress.ip_network(text)  # strict: host bits set is no block's name
    except ValueError:
        return None
    if network.version == 4 and network.prefixlen == 32:
        return str(network.network_address)
    return str(network) if network.version == 6 and network.prefixlen == 64 else None


def lift_keys(field: str, texts: list[Any]) -> list[str]:
    """The blocks addresses name, in order, duplicates dropped; InvalidInput names a bad entry."""
    if len(texts) > MAX_ADDRESSES:
        raise InvalidInput(field, f"at most {MAX_ADDRESSES} addresses")
    keys: list[str] = []
    for i, text in enumerate(texts):
        key = lift_key(text)
        if key is None:
            raise InvalidInput(field, f"entry {i} is not an IP address")
        if key not in keys:
            keys.append(key)
    return keys


def _cidrs(field: str) -> AfterValidator:
    def check(texts: list[str] | None) -> list[str] | None:
        if texts is None:
            return None
        try:
            v4, v6 = canonical_cidrs(texts)
        except ValueError as e:
            raise InvalidInput(field, str(e)) from None
        return v4 + v6

    return AfterValidator(check)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer clients send more


Address = Annotated[str, WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})]


class RemoveNetworkBanRequest(_Body):
    ipv4_addresses: Annotated[list[Address], Field(
        max_length=MAX_ADDRESSES, description="Addresses whose block to lift, IPv4 or IPv6 (an IPv6 address lifts the "
        "block on its /64; a block as listed, such as 2001:db8:1:2::/64, is accepted too)")]
    requester_ip: StrictBool = Field(False, description="Also lift the block on the caller's own address")
    identifier: str | None = Field(None, description="Accepted and ignored (the gateway has one database)")


class NetworkRestrictionsRequest(_Body):
    """The allow list as a whole. Either list may hold either family (sorted out here); a list
    left out is empty. ``0.0.0.0/0`` and ``::/0`` allow everyone."""

    dbAllowedCidrs: Annotated[list[str] | None, _cidrs("dbAllowedCidrs")] = None
    dbAllowedCidrsV6: Annotated[list[str] | None, _cidrs("dbAllowedCidrsV6")] = None

    def cidrs(self) -> tuple[list[str], list[str]]:
        return canonical_cidrs([*(self.dbAllowedCidrs or []), *(self.dbAllowedCidrsV6 or [])])


class NetworkRestrictionsPatchRequest(_Body):
    add: NetworkRestrictionsRequest | None = None
    remove: NetworkRestrictionsRequest | None = None

    def apply(self, old: AllowList) -> tuple[list[str], list[str]]:
        gone = set(self.remove.cidrs()[0] + self.remove.cidrs()[1]) if self.remove else set()
        added = self.add.cidrs() if self.add else ([], [])
        kept = [c for c in old.texts if c not in gone]
        try:
            return canonical_cidrs(kept + [c for c in added[0] + added[1] if c not in gone])
        except ValueError as e:
            raise InvalidInput("add", str(e)) from None


# --- answers ------------------------------------------------------------------------------------------


class BanDetail(BaseModel):
    address: str = Field(description="An IPv4 address, or an IPv6 /64")
    family: Literal["ipv4", "ipv6"]
    started_at: datetime
    ends_at: datetime
    reason: str = Field(description="How many refused requests, under which protection.block_after, the code of "
                                    "the last one")
    refusals: int


class NetworkBanResponse(BaseModel):
    banned_ipv4_addresses: list[str] = Field(description="Every blocked address, IPv4 and IPv6 (/64)")
    bans: list[BanDetail] = Field(description="The gateway's own: when and why each block started, when it ends")


class EnrichedBan(BaseModel):
    banned_address: str
    identifier: str = Field(description="The project ref")
    type: Literal["ipv4", "ipv6"]
    started_at: datetime
    ends_at: datetime
    reason: str


class NetworkBanResponseEnriched(BaseModel):
    banned_ipv4_addresses: list[EnrichedBan]


class RemoveNetworkBanResponse(BaseModel):
    lifted: list[str] = Field(description="The addresses whose block was running and is lifted now")


class RestrictionsConfig(BaseModel):
    dbAllowedCidrs: list[str]
    dbAllowedCidrsV6: list[str]


class NetworkRestrictionsResponse(BaseModel):
    entitlement: Literal["allowed"]
    config: RestrictionsConfig
    status: Literal["applied"] = Field(description="Every worker of every instance applies it within a second")
    updated_at: datetime | None = None
    applied_at: datetime | None = None


class CidrItem(BaseModel):
    address: str
    type: Literal["v4", "v6"]


class RestrictionsConfigV2(BaseModel):
    dbAllowedCidrs: list[CidrItem]


class NetworkRestrictionsV2Response(BaseModel):
    entitlement: Literal["allowed"]
    config: RestrictionsConfigV2
    old_config: RestrictionsConfigV2
    status: Literal["applied"]
    updated_at: datetime | None = None
    applied_at: datetime | None = None


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def family(address: str) -> Literal["ipv4", "ipv6"]:
    return "ipv6" if ":" in address else "ipv4"


def bans_json(bans: list[Ban]) -> dict[str, Any]:
    return {"banned_ipv4_addresses": [b.address for b in bans],
            "bans": [{"address": b.address, "family": family(b.address), "started_at": _at(b.started_at),
                      "ends_at": _at(b.ends_at), "reason": b.reason, "refusals": b.refusals} for b in bans]}


def enriched_json(bans: list[Ban], ref: str) -> dict[str, Any]:
    return {"banned_ipv4_addresses": [
        {"banned_address": b.address, "identifier": ref, "type": family(b.address), "started_at": _at(b.started_at),
         "ends_at": _at(b.ends_at), "reason": b.reason} for b in bans]}


def restrictions_json(allow: AllowList) -> dict[str, Any]:
    at = None if allow.updated_at is None else allow.updated_at.isoformat()
    return {"entitlement": "allowed", "config": {"dbAllowedCidrs": allow.v4, "dbAllowedCidrsV6": allow.v6},
            "status": "applied", "updated_at": at, "applied_at": at}


def _v2(allow: AllowList) -> dict[str, Any]:
    return {"dbAllowedCidrs": [{"address": c, "type": "v4"} for c in allow.v4]
            + [{"address": c, "type": "v6"} for c in allow.v6]}


def restrictions_v2_json(old: AllowList, new: AllowList) -> dict[str, Any]:
    at = None if new.updated_at is None else new.updated_at.isoformat()
    return {"entitlement": "allowed", "config": _v2(new), "old_config": _v2(old), "status": "applied",
            "updated_at": at, "applied_at": at}
