"""吹哨报到 as timers (issue #22): each summoned unit's report-in limit is a clock of its whistle.

A whistle's clocks live in the whistle document (hotline/timers.py, embedded in ``whistles``), one
per summoned unit that has not reported in (``whistle_report_in_<unit>``), due at the summons' due
time (data/supervision_limits.json ``whistle.report_in_hours`` from the whistle), with its due-soon
alarm at the SLA policy's ``due_soon_fraction`` of that span. The whistle's repository gives every
saved whistle exactly these clocks (:func:`whistle_timers`), so a report-in or the close stops them
in the same write. A fired stage is a DeadlineDueSoon / DeadlineMissed of clock
WHISTLE_REPORT_IN on the case topic (keyed by the whistle's ticket, else by the whistle id; the
Deadline names the whistle and the summoned unit) and a due-soon stage also a 事前提醒
(DeadlineReminder) to that unit. A missed report-in raises no 督办: the whistling street office
or department sees it on the board (the summoned unit does not handle the ticket).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from hotline import pb
from hotline import timers as timers_module
from hotline.envelope import Event
from hotline.mongo import Doc, find_in
from hotline.timers import Fired, Stage, Timer, Timers
from hotline.v1 import deadlines_pb2, events_pb2, reminders_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.cases.sla import SlaClock, unit_kind

CLOCK = SlaClock.WHISTLE_REPORT_IN
UnitName = Callable[[str], str]


def whistle_timers(whistle: sv.Whistle, due_soon_fraction: float) -> list[Timer]:
    """The clocks the whistle runs now: one per summoned unit still to report in, until it closes."""
    if whistle.state == sv.WHISTLE_STATE_CLOSED or not whistle.HasField("blown_at"):
        return []
    blown = pb.dt(whistle.blown_at)
    out = []
    for s in whistle.summoned:
        if s.HasField("reported_at") or not s.HasField("due"):
            continue
        due = pb.dt(s.due)
        out.append(Timer(subject=whistle.whistle_id, kind=unit_kind(CLOCK, s.unit_id), due_at=due,
                         warn_at=pb.millis(blown + (due - blown) * due_soon_fraction)))
    return out


def deadline_of(fired: Fired, whistle: sv.Whistle | None, name: UnitName) -> deadlines_pb2.Deadline:
    t = fired.timer
    d = deadlines_pb2.Deadline(ticket_id=whistle.ticket_id if whistle else "", clock=CLOCK.proto,
                               due_at=pb.ts(t.due_at), fired_at=pb.ts(fired.fired_at), clock_key=t.kind,
                               whistle_id=t.subject)
    if whistle is not None:
        summons = next((s for s in whistle.summoned if unit_kind(CLOCK, s.unit_id) == t.kind), None)
        if summons is not None:
            d.unit.CopyFrom(events_pb2.Unit(unit_id=summons.unit_id, name=name(summons.unit_id)))
        d.primary_unit.CopyFrom(events_pb2.Unit(unit_id=whistle.street_unit_id, name=name(whistle.street_unit_id)))
    return d


def whistle_events(fired: Sequence[Fired], whistles: Mapping[str, sv.Whistle], topic: str,
                   notifications_topic: str, tz: Any, name: UnitName) -> list[Event]:
    """DeadlineDueSoon / DeadlineMissed per fired stage (deterministic ids), and a reminder per
    due-soon stage to the summoned unit."""
    out = []
    for f in fired:
        d = deadline_of(f, whistles.get(f.timer.subject), name)
        due = f.timer.due_at.strftime("%Y%m%dT%H%M%S")
        event_id = f"{f.timer.subject}/deadline/{f.timer.kind}/{f.stage.value}/{due}"
        key = d.ticket_id or f.timer.subject
        message = deadlines_pb2.DeadlineDueSoon(deadline=d) if f.stage == Stage.DUE_SOON \
            else deadlines_pb2.DeadlineMissed(deadline=d)
        out.append(Event(topic, key, message, event_id, occurred_at=f.fired_at))
        if f.stage == Stage.DUE_SOON and notifications_topic:
            unit = d.unit if d.HasField("unit") else d.primary_unit
            at = pb.dt(d.due_at).astimezone(tz).strftime("%Y-%m-%d %H:%M")
            about = f"工单 {d.ticket_id} 的吹哨" if d.ticket_id else f"吹哨 {f.timer.subject}"
            text = f"【12345事前提醒】{unit.name or unit.unit_id}：{about}报到时限将于 {at} 到期，请及时报到。"
            out.append(Event(notifications_topic, key, reminders_pb2.DeadlineReminder(
                reminder_id=event_id, ticket_id=d.ticket_id, unit=unit, clock=d.clock, due_at=d.due_at, text=text,
                occurred_at=d.fired_at, clock_key=d.clock_key), f"{event_id}/reminder", occurred_at=f.fired_at))
    return out


class WhistleAlarms:
    """What a fired whistle clock means (the whistle Timers' ``on_fire``), in the scan's transaction."""

    def __init__(self, db: Any, collection: str, topic: str, notifications_topic: str, tz: Any,
                 names: Mapping[str, str]) -> None:
        self.whistles = db[collection]
        self.topic = topic
        self.notifications_topic = notifications_topic
        self.tz = tz
        self.names = names

    async def __call__(self, fired: Sequence[Fired], session: AsyncClientSession) -> list[Event]:
        docs: list[Doc] = await find_in(self.whistles, sorted({f.timer.subject for f in fired}), session=session)
        whistles = {d["_id"]: pb.from_doc(d, sv.Whistle) for d in docs}
        return whistle_events(fired, whistles, self.topic, self.notifications_topic, self.tz,
                              lambda unit: self.names.get(unit, ""))


class WhistleClocks:
    """What a saved whistle needs to get its clocks: the whistle timers and the SLA policy's
    current due-soon fraction."""

    def __init__(self, timers: Timers, due_soon_fraction: Callable[[], Awaitable[float]]) -> None:
        self.timers = timers
        self.due_soon_fraction = due_soon_fraction

    async def fields(self, whistle: sv.Whistle, stored: Doc | None) -> Doc:
        """The timer fields of ``whistle`` about to replace ``stored``: exactly the clocks it runs."""
        clocks = whistle_timers(whistle, await self.due_soon_fraction())
        return self.timers.replacing((stored or {}).get(timers_module.FIELD), clocks)
