"""The SLA policy's admin API (时限政策): read the current policy and every version; replace it
(the administrator), each replacement a new version. A case keeps the version it started with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path
from pymongo.asynchronous.client_session import AsyncClientSession

from hotline import api as kit_api
from hotline import auth
from hotline.auth import Principal
from hotline.commands import Command, CommandBus, Decision, Exists, Invalid, NotFound
from services.supervision.sla import Policy, PolicyError, next_policy
from services.supervision.store import PolicyConflict, PolicyStore

TARGET = "sla_policy"  # the one aggregate: the policy's versions


class PolicyVersions:
    """The SLA policy as the command path loads and saves it: the current version in, a new
    version out (who and why kept with it)."""

    kind = "sla_policy"

    def __init__(self, policies: PolicyStore, actor: str, reason: str) -> None:
        self.policies, self.actor, self.reason = policies, actor, reason

    async def load(self, target: str, session: AsyncClientSession | None) -> Policy | None:
        return await self.policies.current(refresh=True)

    async def save(self, state: Policy, session: AsyncClientSession | None) -> None:
        try:
            await self.policies.add(state, actor=self.actor, reason=self.reason, session=session)
        except PolicyConflict as exc:
            raise Exists(str(exc)) from exc


def policy_json(version: int, doc: Any) -> dict[str, Any]:
    return {"version": version, "policy": dict(doc)}


def sla_routes(policies: PolicyStore, commands: CommandBus, topic: str) -> APIRouter:
    api = APIRouter(tags=["sla"])

    @api.get("/sla/policy", summary="时限政策: the current SLA policy")
    async def current_policy() -> dict[str, Any]:
        policy = await policies.current(refresh=True)
        return policy_json(policy.version, policy.doc)

    @api.get("/sla/policy/versions", summary="Every version of the SLA policy, newest first (who, when, why)")
    async def policy_versions() -> dict[str, Any]:
        return {"versions": [{"version": d["_id"], "stored_at": d["stored_at"].isoformat(), "actor": d.get("actor", ""),
                              "reason": d.get("reason", "")} for d in await policies.history()]}

    @api.get("/sla/policy/versions/{version}", summary="One version of the SLA policy")
    async def policy_version(version: int = Path(..., ge=1, le=1_000_000)) -> dict[str, Any]:
        policy = await policies.get(version)
        if policy is None:
            raise NotFound("SLA policy version", str(version))
        return policy_json(policy.version, policy.doc)

    @api.put("/sla/policy", summary="Replace the SLA policy: a new version for the cases opened from now on")
    async def replace_policy(policy: dict[str, Any] = Body(..., description="the policy document (sla.py)"),
                             based_on: int = Body(..., ge=1, le=1_000_000,
                                                  description="the version the edit started from"),
                             reason: str = Body(..., min_length=1, max_length=2000),
                             principal: Principal = Depends(auth.principal),
                             key: str = Depends(kit_api.idempotency_key)) -> dict[str, Any]:
        def decide(current: Policy | None) -> Decision[Policy]:
            if current is None:
                raise NotFound("SLA policy", "current")
            try:
                new = next_policy(current, policy, based_on)
            except PolicyError as exc:
                if based_on != current.version:
                    raise Exists(str(exc)) from exc  # 409: someone else changed it first
                raise Invalid("; ".join(exc.problems)) from exc
            return Decision(new, answer=policy_json(new.version, new.doc))

        # one command: idempotent by its key, audited (who, why, before and after)
        answer: dict[str, Any] = await commands.run(Command("replace_sla_policy", TARGET, principal, key, reason),
                                                    PolicyVersions(policies, principal.subject, reason), decide, topic)
        return answer

    return api
