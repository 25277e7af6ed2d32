"""The admin API's network-bans and network-restrictions (docs/protection.md), with the Management
API's paths, shapes and statuses, so that the Supabase CLI's ``network-bans get|remove`` and
``network-restrictions get|update`` and supabase-management-js work against the admin listener.

Every change goes through gateway.rules.banstore: one transaction with its audit row and the
notification that every worker of every instance applies.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from gateway.admin.app import WITH_INPUT, Actor, State, _errors, actor, project
from gateway.admin.netshapes import (
    NetworkBanResponse,
    NetworkBanResponseEnriched,
    NetworkRestrictionsPatchRequest,
    NetworkRestrictionsRequest,
    NetworkRestrictionsResponse,
    NetworkRestrictionsV2Response,
    RemoveNetworkBanRequest,
    RemoveNetworkBanResponse,
    bans_json,
    enriched_json,
    lift_keys,
    restrictions_json,
    restrictions_v2_json,
)
from gateway.rules import banstore
from gateway.rules.network import block_key

router = APIRouter(prefix="/v1/projects/{ref}", tags=["network"], dependencies=[Depends(actor), Depends(project)],
                   responses=_errors(401, 404, 503))


@router.post("/network-bans/retrieve", status_code=201, response_model=NetworkBanResponse)
async def list_bans(state: State) -> dict[str, Any]:
    """Every running block: the addresses (IPv4, IPv6 /64), and when and why each started."""
    return bans_json(await banstore.active_bans(state.store.pool, time.time()))


@router.post("/network-bans/retrieve/enriched", status_code=201, response_model=NetworkBanResponseEnriched)
async def list_bans_enriched(ref: str, state: State) -> dict[str, Any]:
    return enriched_json(await banstore.active_bans(state.store.pool, time.time()), ref)


@router.delete("/network-bans", response_model=RemoveNetworkBanResponse, responses=WITH_INPUT)
async def lift_bans(body: RemoveNetworkBanRequest, request: Request, state: State, who: Actor) -> dict[str, Any]:
    """Lift the blocks on the addresses given (and, with ``requester_ip``, on the caller's own);
    their refusals are forgotten too, so they start again from nothing."""
    keys = lift_keys("ipv4_addresses", body.ipv4_addresses)
    client = request.client
    own = block_key(client.host) if body.requester_ip and client is not None else None
    if own is not None and own not in keys:
        keys.append(own)
    return {"lifted": await banstore.lift_bans(state.store.pool, keys, who) if keys else []}


# The Supabase CLI refuses a null where the API may leave a field out (updated_at before any change).
@router.get("/network-restrictions", response_model=NetworkRestrictionsResponse, response_model_exclude_none=True)
async def get_restrictions(state: State) -> dict[str, Any]:
    """The client networks the public listener answers (default everyone: 0.0.0.0/0 and ::/0)."""
    return restrictions_json(await banstore.allow_list(state.store.pool))


@router.post("/network-restrictions/apply", status_code=201, response_model=NetworkRestrictionsResponse,
             response_model_exclude_none=True, responses=WITH_INPUT)
async def apply_restrictions(body: NetworkRestrictionsRequest, state: State, who: Actor) -> dict[str, Any]:
    """Replace the allow list; a list left out is empty (so an IPv4 list alone refuses IPv6 clients)."""
    cidrs = body.cidrs()
    _, new = await banstore.set_allow_list(state.store.pool, lambda _old: cidrs, who)
    return restrictions_json(new)


@router.patch("/network-restrictions", response_model=NetworkRestrictionsV2Response, response_model_exclude_none=True,
              responses=WITH_INPUT)
async def patch_restrictions(body: NetworkRestrictionsPatchRequest, state: State, who: Actor) -> dict[str, Any]:
    """Add CIDRs to the allow list, or remove some (the Supabase CLI's ``update --append``)."""
    old, new = await banstore.set_allow_list(state.store.pool, body.apply, who)
    return restrictions_v2_json(old, new)
