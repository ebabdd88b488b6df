"""The holiday duty rosters (值班表, holidays.py): one document per year and holiday."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline.mongo import Doc

ROSTERS = "holiday_rosters"


class RosterRepository:
    kind = "holiday_roster"

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db

    async def load(self, target: str, session: AsyncClientSession | None) -> dict[str, Any] | None:
        doc = await self.db[ROSTERS].find_one({"_id": target}, session=session)
        return {k: v for k, v in doc.items() if k != "_id"} if doc else None

    async def save(self, state: dict[str, Any], session: AsyncClientSession | None) -> None:
        await self.db[ROSTERS].replace_one({"_id": state["key"]}, {"_id": state["key"], **state}, upsert=True,
                                           session=session)
