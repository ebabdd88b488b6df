"""The kit's policy saves (hotline/policies.py): a typed command (:class:`SavePolicy`) through the
bus to its one handler, with the in-memory unit of work: no Kafka, no store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hotline import policies
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.commands import DomainError
from hotline.policy import Role
from hotline.uow import InMemoryUnitOfWork

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
OFFICE = Principal("o1", Role.OFFICE)


class NoStore:
    """The store's database: the in-memory unit of work never reads or writes through it."""

    def __getitem__(self, name: str) -> Any:
        return self


def validate(doc: Any) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("limit"), int):
        raise policies.PolicyInvalid("limit", "must be a number")


def environment() -> tuple[MessageBus, InMemoryUnitOfWork, policies.PolicyStore]:
    uow = InMemoryUnitOfWork("supervision")
    store = policies.PolicyStore(NoStore(), "demo_policy")  # type: ignore[arg-type]
    uow.states["policy", "demo_policy"] = policies.PolicyVersion("demo_policy", 1, {"version": 1, "limit": 5},
                                                                 "system:supervision", NOW, "shipped")
    bus = MessageBus(uow)
    policies.register(bus, policies.PolicyHandler(store, validate, ManualClock(NOW), "t.cases"))
    return bus, uow, store


async def test_a_new_version_saved_with_its_audit_under_the_policys_name() -> None:
    bus, uow, _ = environment()
    answer = await bus.handle(policies.SavePolicy({"version": 1, "limit": 7}, OFFICE, "k1", policy="demo_policy",
                                                  reason="更严"))
    assert answer["version"] == 2 and answer["doc"] == {"version": 2, "limit": 7}
    saved = uow.state("policy", "demo_policy")
    assert (saved.version, saved.actor, saved.reason) == (2, "o1", "更严")
    (entry,) = uow.audit
    assert (entry["action"], entry["target_id"], entry["reason"]) == ("save_demo_policy", "demo_policy", "更严")
    again = await bus.handle(policies.SavePolicy({"version": 1, "limit": 7}, OFFICE, "k1", policy="demo_policy",
                                                 reason="更严"))
    assert again == answer and len(uow.audit) == 1  # a retry: the first answer


@pytest.mark.parametrize(("body", "expected", "code"), [
    ({"limit": "x"}, 0, "invalid_argument"),  # the schema refuses it
    ({"version": 1, "limit": 5}, 0, "invalid_argument"),  # nothing changed
    ({"limit": 9}, 3, "failed_precondition"),  # edited a version that is not the newest
])
async def test_a_refused_version_changes_nothing(body: dict[str, Any], expected: int, code: str) -> None:
    bus, uow, _ = environment()
    with pytest.raises(DomainError) as err:
        await bus.handle(policies.SavePolicy(body, OFFICE, "k", policy="demo_policy", reason="改",
                                             expected_version=expected))
    assert err.value.code == code
    assert uow.state("policy", "demo_policy").version == 1 and uow.audit == []


async def test_one_handler_per_policy_bus() -> None:
    bus, _, store = environment()
    with pytest.raises(ValueError, match="one handler per command type"):
        policies.register(bus, policies.PolicyHandler(store, validate, ManualClock(NOW), "t.cases"))
    with pytest.raises(DomainError) as err:  # this bus saves its own policy only
        await bus.handle(policies.SavePolicy({"limit": 1}, OFFICE, "k", policy="other", reason="x"))
    assert err.value.code == "invalid_argument"


def test_the_route_saves_through_the_typed_command() -> None:
    """PUT /policies/<name> (policy_routes) hands the bus a SavePolicy: the in-memory unit of work sees it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from hotline import auth
    from hotline.api import idempotency_key

    _, uow, store = environment()
    app = FastAPI()
    app.include_router(policies.policy_routes(store, validate, MessageBus(uow), ManualClock(NOW), "t.cases", "demo"))
    app.dependency_overrides[auth.principal] = lambda: OFFICE
    app.dependency_overrides[idempotency_key] = lambda: "k-route"
    answer = TestClient(app).put("/policies/demo_policy", json={"doc": {"version": 1, "limit": 6}, "reason": "放宽"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 2 and store.saves == 1
    assert [(e["action"], e["reason"]) for e in uow.audit] == [("save_demo_policy", "放宽")]
    refused = TestClient(app).put("/policies/demo_policy", json={"doc": {"limit": "x"}, "reason": "坏"})
    assert refused.status_code == 422 and refused.json()["field"] == "limit"
