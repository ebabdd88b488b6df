"""Metrics' command side: its two writes are typed commands through the service's message bus
(hotline/bus.py) to their one handler each (registered in main by :func:`register`):
:class:`SaveHolidayRoster` (值班表, holidays.py) and :class:`SaveArticle` (知识库, knowledge/articles.py).
The routes check the request, build the command and ``bus.handle`` it. A body is the route's JSON
(a dict), ``ref`` the target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from hotline.bus import MessageBus, Request
from hotline.clock import Clock
from hotline.commands import Command, Decision
from hotline.mongo import Doc
from hotline.uow import Work
from services.metrics.knowledge import articles
from services.metrics.knowledge.store import KnowledgeStore
from services.metrics.rosters import RosterRepository


@dataclass(frozen=True)
class MetricsCommand(Request[Any]):
    ref: str = ""
    reason: str = ""


@dataclass(frozen=True)
class SaveHolidayRoster(MetricsCommand):
    """值班表 of a holiday (body: entries, already checked; ref: year/holiday)"""

    year: int = 0
    holiday: str = ""


@dataclass(frozen=True)
class SaveArticle(MetricsCommand):
    """A new version of a knowledge article (body: the article; ref: its id)"""

    expected_version: int = 0


class MetricsHandlers:
    def __init__(self, db: AsyncDatabase[Doc], articles_store: KnowledgeStore, clock: Clock, topic: str) -> None:
        self.db, self.articles, self.clock, self.topic = db, articles_store, clock, topic

    def _envelope(self, command: MetricsCommand) -> Command:
        return Command(command.name, command.ref, command.actor, command.idempotency_key, command.reason)

    async def save_roster(self, command: SaveHolidayRoster) -> Work[Any]:
        now: datetime = self.clock.now()

        def decide(before: dict[str, Any] | None) -> Decision[dict[str, Any]]:
            state = {"key": command.ref, "year": command.year, "holiday": command.holiday,
                     "entries": command.body["entries"], "saved_by": command.actor.subject, "saved_at": now}
            return Decision(state, answer={k: v for k, v in state.items() if k != "saved_at"})
        return Work(self._envelope(command), RosterRepository(self.db), decide, self.topic)

    async def save_article(self, command: SaveArticle) -> Work[Any]:
        now = self.clock.now()
        return Work(self._envelope(command), self.articles, lambda current: articles.save(
            current, command.ref, command.body, command.expected_version, command.actor, now,
            command.reason or "编辑"), "")


def register(bus: MessageBus, handlers: MetricsHandlers) -> None:
    """Metrics' commands, one handler each (called from main)."""
    bus.register(SaveHolidayRoster, handlers.save_roster)
    bus.register(SaveArticle, handlers.save_article)
