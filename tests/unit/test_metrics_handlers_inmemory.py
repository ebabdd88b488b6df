"""Metrics' command handlers (services/metrics/commands.py: 值班表, 知识库 articles) through the bus
with the in-memory unit of work: no Kafka, no store."""

from __future__ import annotations

from typing import Any

import pytest

from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.commands import DomainError
from hotline.uow import InMemoryUnitOfWork
from services.metrics import commands as mc
from services.metrics.holidays import check_roster
from services.metrics.knowledge.store import KnowledgeStore
from tests.unit.test_knowledge import ARTICLE, NOW, OFFICE


class NoStore:
    """The repositories' database: the in-memory unit of work never reads or writes through them."""

    def __getitem__(self, name: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        return self


def environment() -> tuple[MessageBus, InMemoryUnitOfWork]:
    uow = InMemoryUnitOfWork("metrics")
    bus = MessageBus(uow)
    db: Any = NoStore()
    mc.register(bus, mc.MetricsHandlers(db, KnowledgeStore(db), ManualClock(NOW), "t.cases"))
    return bus, uow


async def test_a_holiday_roster_saved_and_saved_again() -> None:
    bus, uow = environment()
    entries = check_roster([{"level": "district", "unit": "区热线办", "day": "2026-10-01", "name": "李", "phone": "1"}])
    answer = await bus.handle(mc.SaveHolidayRoster({"entries": entries}, OFFICE, "k1", ref="2026/国庆节", year=2026,
                                                   holiday="国庆节"))
    assert answer == {"key": "2026/国庆节", "year": 2026, "holiday": "国庆节", "entries": entries,
                      "saved_by": OFFICE.subject}
    assert uow.state("holiday_roster", "2026/国庆节")["saved_at"] == NOW
    await bus.handle(mc.SaveHolidayRoster({"entries": entries * 2}, OFFICE, "k2", ref="2026/国庆节", year=2026,
                                          holiday="国庆节"))
    assert len(uow.state("holiday_roster", "2026/国庆节")["entries"]) == 2
    assert [e["action"] for e in uow.audit] == ["save_holiday_roster", "save_holiday_roster"]


async def test_an_article_saved_as_versions() -> None:
    bus, uow = environment()
    first = await bus.handle(mc.SaveArticle(ARTICLE, OFFICE, "a1", ref="KA-1", reason="新建"))
    assert first["version"] == 1
    with pytest.raises(DomainError) as exists:
        await bus.handle(mc.SaveArticle(ARTICLE, OFFICE, "a2", ref="KA-1", reason="again"))
    assert exists.value.code == "already_exists"
    second = await bus.handle(mc.SaveArticle({**ARTICLE, "answer": ARTICLE["answer"] + "（已更新）"}, OFFICE, "a3",
                                             ref="KA-1", reason="更新", expected_version=1))
    assert second["version"] == 2 and uow.state("article", "KA-1")["reason"] == "更新"
    assert [(e["action"], e["reason"]) for e in uow.audit] == [("save_article", "新建"), ("save_article", "更新")]


async def test_one_handler_each() -> None:
    bus, _ = environment()
    assert set(bus.handlers) == {mc.SaveHolidayRoster, mc.SaveArticle}
    with pytest.raises(ValueError, match="one handler per command type"):
        mc.register(bus, mc.MetricsHandlers(NoStore(), KnowledgeStore(NoStore()), ManualClock(NOW), "t"))  # type: ignore[arg-type]


def test_the_routes_save_through_the_typed_commands() -> None:
    """PUT /knowledge/articles/{id} and POST /holidays/{year}/{name}/roster hand the bus their commands."""
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from hotline import auth
    from hotline.api import idempotency_key
    from services.metrics.holidays import holiday_routes
    from services.metrics.knowledge import api as knowledge_api

    bus, uow = environment()
    app = FastAPI()
    db: Any = NoStore()
    app.include_router(knowledge_api.http_routes(KnowledgeStore(db), None, bus, ManualClock(NOW)))  # type: ignore[arg-type]
    app.include_router(holiday_routes(SimpleNamespace(tz=ZoneInfo("Asia/Shanghai")), db, bus))  # type: ignore[arg-type]
    app.dependency_overrides[auth.principal] = lambda: OFFICE
    keys = iter(["k-article", "k-roster"])
    app.dependency_overrides[idempotency_key] = lambda: next(keys)
    client = TestClient(app)
    saved = client.put("/knowledge/articles/KA-9", json={"article": ARTICLE, "reason": "新建", "expected_version": 0})
    assert saved.status_code == 200, saved.text
    roster = client.post("/holidays/2026/国庆节/roster", json={"entries": [
        {"level": "district", "unit": "区热线办", "day": "2026-10-01", "name": "李", "phone": "1"}]})
    assert roster.status_code == 200, roster.text
    assert [e["action"] for e in uow.audit] == ["save_article", "save_holiday_roster"]
