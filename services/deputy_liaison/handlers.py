"""Deputy liaison's consumer: follows the cases opened for deputies' submissions."""

from __future__ import annotations

from hotline.api import as_json
from hotline.envelope import Event, EventTypes, Record
from hotline.v1 import events_pb2
from services.deputy_liaison.core import submission_id_of
from services.deputy_liaison.store import DeputyStore


class CaseFollowing:
    def __init__(self, store: DeputyStore) -> None:
        self.store = store
        self.types = EventTypes(events_pb2.CaseOpened)

    def decode(self, record: Record) -> events_pb2.Case | None:
        if submission_id_of(record.key) is None:
            return None  # not a deputy's ticket: nothing to follow
        match self.types.decode(record):
            case events_pb2.CaseOpened(case=case):
                return case
        return None

    async def apply(self, items: list[tuple[Record, events_pb2.Case | None]]) -> list[Event]:
        updates = {}
        for _, case in items:
            if case is not None and (sid := submission_id_of(case.ticket_id)):
                updates[sid] = as_json(case)
        await self.store.record_cases(updates)
        return []
