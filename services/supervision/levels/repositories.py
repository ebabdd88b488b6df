"""The levels wing's repositories: a case's supervision (with its case, through the case
repository, the one writer of the case document), a merge, a month's 屡办不成 list, a whistle,
a letter (with the year's register) and a talk. The command handlers (commands.py) use them."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.mongo import Doc
from hotline.v1 import circulation_pb2 as cp
from hotline.v1 import supervision_pb2 as sv
from services.supervision.cases.store import CaseClocks, CaseRepository, CaseStore
from services.supervision.levels import circulation as circ
from services.supervision.levels import escalation as esc
from services.supervision.levels.whistle_clocks import WhistleClocks

SUPERVISIONS, RECORDS, WHISTLES, RECURRING = "case_supervision", "supervision_records", "whistles", "recurring_lists"
LETTERS, REGISTER, TALKS = "letters", "letter_register", "talks"


class SupervisedRepository:
    """A case's supervision with its case (the case must exist; its level is mirrored)."""

    kind = "case_supervision"

    def __init__(self, db: AsyncDatabase[Doc], clocks: CaseClocks | None = None) -> None:
        self.db = db
        self.clocks = clocks  # the case's timers follow its open level's limit (督办 timer, issue #22)
        self.cases = CaseRepository(CaseStore(db), clocks)  # reads and writes the case (the one writer)

    async def load(self, target: str, session: AsyncClientSession | None) -> esc.Supervised | None:
        case = await self.cases.load(target, session)
        if case is None:
            return None
        doc = await self.db[SUPERVISIONS].find_one({"_id": target}, session=session)
        supervision = pb.from_doc(doc, sv.CaseSupervision) if doc else sv.CaseSupervision(ticket_id=target)
        return esc.Supervised(case, supervision)

    async def save(self, state: esc.Supervised, session: AsyncClientSession | None) -> None:
        s = state.supervision
        await self.db[SUPERVISIONS].replace_one({"_id": s.ticket_id}, {"_id": s.ticket_id, **pb.to_doc(s)},
                                                upsert=True, session=session)
        top = max((r for r in s.records if r.state == sv.SUPERVISION_STATE_OPEN and r.HasField("due")),
                  key=lambda r: (r.level, r.raised_at.seconds), default=None)
        # the case's level (a deputy's escalation also moves its revision) and the open level's limit as a
        # clock: written by the case repository, the one writer of the case document
        await self.cases.save_supervision(state.case, (top.due, top.raised_at) if top is not None else None, session)
        for r in s.records:
            await self.db[RECORDS].replace_one(
                {"_id": r.record_id}, {"_id": r.record_id, "ticket_id": s.ticket_id, "level": r.level,
                                       "state": sv.SupervisionState.Name(r.state), "due": pb.dt(r.due)},
                upsert=True, session=session)


class MergeRepository(SupervisedRepository):
    """The parent's supervision with the named children's (并单)."""

    def __init__(self, db: AsyncDatabase[Doc], children: list[str], clocks: CaseClocks | None = None) -> None:
        super().__init__(db, clocks)
        self.wanted = children

    async def load(self, target: str, session: AsyncClientSession | None) -> esc.Supervised | None:
        parent = await super().load(target, session)
        if parent is not None:
            for tid in self.wanted:
                if tid != target and (child := await super().load(tid, session)) is not None:
                    parent.children[tid] = child
        return parent

    async def save(self, state: esc.Supervised, session: AsyncClientSession | None) -> None:
        await super().save(state, session)
        for child in state.children.values():
            await super().save(child, session)


class RecurringRepository:
    """A month's 屡办不成 list (one document per month)."""

    kind = "recurring_list"

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.lists = db[RECURRING]

    async def load(self, target: str, session: AsyncClientSession | None) -> sv.RecurringList | None:
        doc = await self.lists.find_one({"_id": target}, session=session)
        return pb.from_doc(doc, sv.RecurringList) if doc else None

    async def save(self, state: sv.RecurringList, session: AsyncClientSession | None) -> None:
        await self.lists.replace_one({"_id": state.month}, {"_id": state.month, **pb.to_doc(state)}, upsert=True,
                                     session=session)


class WhistleRepository:
    """A whistle; every save gives it the report-in clocks it runs now (``clocks``, whistle_clocks.py)."""

    kind = "whistle"

    def __init__(self, db: AsyncDatabase[Doc], clocks: WhistleClocks | None = None) -> None:
        self.whistles = db[WHISTLES]
        self.clocks = clocks
        self._docs: dict[str, Doc] = {}

    async def load(self, target: str, session: AsyncClientSession | None) -> sv.Whistle | None:
        doc = await self.whistles.find_one({"_id": target}, session=session)
        if doc:
            self._docs[target] = doc
        return pb.from_doc(doc, sv.Whistle) if doc else None

    async def save(self, whistle: sv.Whistle, session: AsyncClientSession | None) -> None:
        doc = {"_id": whistle.whistle_id, **pb.to_doc(whistle)}
        if self.clocks is not None:
            doc |= await self.clocks.fields(whistle, self._docs.get(whistle.whistle_id))
        await self.whistles.replace_one({"_id": whistle.whistle_id}, doc, upsert=True, session=session)


class LetterRepository:
    kind = "letter"

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db

    async def load(self, target: str, session: AsyncClientSession | None) -> cp.Letter | None:
        doc = await self.db[LETTERS].find_one({"_id": target}, session=session)
        return pb.from_doc(doc, cp.Letter) if doc else None

    async def save(self, state: cp.Letter, session: AsyncClientSession | None) -> None:
        await self.db[LETTERS].replace_one({"_id": state.letter_id}, {"_id": state.letter_id, **pb.to_doc(state)},
                                           upsert=True, session=session)


class RegisterRepository:
    """A letter to send with the register of the year it is sent in."""

    kind = "letter"

    def __init__(self, db: AsyncDatabase[Doc], year: int) -> None:
        self.db, self.year, self.letters = db, year, LetterRepository(db)

    async def load(self, target: str, session: AsyncClientSession | None) -> circ.Registered:
        register = await self.db[REGISTER].find_one({"_id": str(self.year)}, session=session)
        return circ.Registered(await self.letters.load(target, session), self.year,
                               int((register or {}).get("next", 1)))

    async def save(self, state: circ.Registered, session: AsyncClientSession | None) -> None:
        assert state.letter is not None
        await self.letters.save(state.letter, session)
        await self.db[REGISTER].update_one({"_id": str(state.year)}, {"$max": {"next": state.next_sequence}},
                                           upsert=True, session=session)


class TalkRepository:
    kind = "talk"  # 约谈

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db

    async def load(self, target: str, session: AsyncClientSession | None) -> dict[str, Any] | None:
        doc = await self.db[TALKS].find_one({"_id": target}, session=session)
        return {k: v for k, v in doc.items() if k != "_id"} if doc else None

    async def save(self, state: dict[str, Any], session: AsyncClientSession | None) -> None:
        await self.db[TALKS].replace_one({"_id": state["talk_id"]}, {"_id": state["talk_id"], **state}, upsert=True,
                                         session=session)
