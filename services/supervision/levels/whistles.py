"""Whistles (吹哨报到): the pure part. No I/O.

A street office (街道) or a department (部门, issue #22: the district report counts whistles by
departments too) whistles on a ticket or a problem, naming the units it summons (``street_unit_id``
names the whistling unit, whichever it is);
each summoned unit must report in (报到) within the limit of ``data/supervision_limits.json``
(clock hours); the street office (or the district office) records the outcome and closes it.

Scope: a unit sees only the whistles its street raised or it is summoned to (:func:`visible`);
the office sees all. Refusals are DomainErrors like the lifecycle's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from google.protobuf.message import Message

from hotline import pb
from hotline.auth import Principal
from hotline.commands import Decision, DomainError, Illegal, Invalid, NotFound
from hotline.policy import Role
from hotline.v1 import events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.levels.escalation import Rules, actor_of, stamp

OPEN, REPORTED, CLOSED = sv.WHISTLE_STATE_OPEN, sv.WHISTLE_STATE_REPORTED, sv.WHISTLE_STATE_CLOSED
MAX_SUMMONED = 20
MAX_TEXT = 2000
WHISTLERS = (events_pb2.UNIT_TYPE_STREET, events_pb2.UNIT_TYPE_DEPARTMENT)  # who may blow a whistle (吹哨)
UnitType = Callable[[str], "events_pb2.UnitType.ValueType | None"]  # a unit's type, None when unknown


def whistle_id(actor: Principal, idempotency_key: str) -> str:
    """A new whistle's id: the same request (actor and key) names the same whistle."""
    return "WH-" + hashlib.sha256(f"{actor.subject}|{idempotency_key}".encode()).hexdigest()[:16]


def visible(whistle: sv.Whistle | None, wid: str, who: Principal) -> sv.Whistle:
    if whistle is None or (who.role == Role.UNIT and who.unit_id != whistle.street_unit_id and
                           who.unit_id not in {s.unit_id for s in whistle.summoned}):
        raise NotFound("whistle", wid)
    return whistle


def _copy(w: sv.Whistle) -> sv.Whistle:
    out = sv.Whistle()
    out.CopyFrom(w)
    return out


def blow(existing: sv.Whistle | None, wid: str, r: sv.BlowWhistleRequest, actor: Principal, now: datetime,
         rules: Rules, unit_type: UnitType) -> Decision[sv.Whistle]:
    if existing is not None:
        raise Illegal(f"whistle {wid} exists")
    problem = r.problem.strip()
    if not problem and not r.ticket_id:
        raise Invalid("name the ticket or describe the problem")
    if len(problem) > MAX_TEXT:
        raise Invalid(f"the problem is longer than {MAX_TEXT} characters")
    units = list(dict.fromkeys(u.strip() for u in r.unit_ids if u.strip()))
    if not units or len(units) > MAX_SUMMONED:
        raise Invalid(f"summon 1-{MAX_SUMMONED} units")
    unknown = [u for u in units if unit_type(u) is None]
    if unknown:
        raise Invalid(f"unknown units: {', '.join(unknown)}")
    street = actor.unit_id if actor.role == Role.UNIT else r.street_unit_id
    if actor.role == Role.UNIT and r.street_unit_id and r.street_unit_id != actor.unit_id:
        raise DomainError("permission_denied", "a unit whistles for itself")
    if unit_type(street) not in WHISTLERS:
        raise (DomainError("permission_denied", "only a street office (街道) or a department (部门) whistles")
               if actor.role == Role.UNIT
               else Invalid(f"street_unit_id {street!r} is not a street office or a department"))
    if street in units:
        raise Invalid("a unit does not summon itself")
    due = pb.ts(now + timedelta(hours=rules.report_in_hours))
    whistle = sv.Whistle(
        whistle_id=wid, street_unit_id=street, ticket_id=r.ticket_id.strip(), problem=problem,
        summoned=[sv.Summons(unit_id=u, due=due) for u in units], state=OPEN, blown_at=pb.ts(now),
        blown_by=actor_of(actor), limits_version=rules.version,
        whistler_type=unit_type(street) or events_pb2.UNIT_TYPE_UNSPECIFIED)  # the figures count by it
    return Decision(whistle, events=[sv.WhistleBlown(whistle=_copy(whistle), occurred_at=pb.ts(now))],
                    audit={"detail": f"吹哨 {street} -> {', '.join(units)}"})


def report_in(before: sv.Whistle | None, r: sv.ReportInRequest, actor: Principal,
              now: datetime) -> Decision[sv.Whistle]:
    whistle = _copy(visible(before, r.whistle_id, actor))
    summons = next((s for s in whistle.summoned if actor.role == Role.UNIT and s.unit_id == actor.unit_id), None)
    if summons is None:
        raise DomainError("permission_denied", "only a summoned unit reports in")
    if whistle.state == CLOSED:
        raise Illegal("the whistle is closed")
    if summons.HasField("reported_at"):
        raise Illegal(f"{summons.unit_id} already reported in")
    if len(r.note) > MAX_TEXT:
        raise Invalid(f"the note is longer than {MAX_TEXT} characters")
    summons.reported_at.CopyFrom(stamp(now))
    summons.on_time = now <= pb.dt(summons.due)
    summons.note = r.note.strip()
    summons.reported_by.CopyFrom(actor_of(actor))
    if all(s.HasField("reported_at") for s in whistle.summoned):
        whistle.state = REPORTED
    return Decision(whistle, events=[sv.WhistleReportedIn(whistle=_copy(whistle), unit_id=summons.unit_id,
                                                          occurred_at=pb.ts(now))],
                    audit={"detail": f"报到 {summons.unit_id}{'' if summons.on_time else ' (late)'}"})


def close(before: sv.Whistle | None, r: sv.CloseWhistleRequest, actor: Principal,
          now: datetime) -> Decision[sv.Whistle]:
    whistle = _copy(visible(before, r.whistle_id, actor))
    if actor.role == Role.UNIT and actor.unit_id != whistle.street_unit_id:
        raise DomainError("permission_denied", "the street office that whistled closes it")
    if whistle.state == CLOSED:
        raise Illegal("the whistle is already closed")
    outcome = r.outcome.strip()
    if not outcome or len(outcome) > MAX_TEXT:
        raise Invalid(f"an outcome of 1-{MAX_TEXT} characters is required")
    whistle.state, whistle.resolved, whistle.outcome = CLOSED, r.resolved, outcome
    whistle.closed_at.CopyFrom(stamp(now))
    return Decision(whistle, events=[sv.WhistleClosed(whistle=_copy(whistle), occurred_at=pb.ts(now))],
                    audit={"detail": f"closed, {'resolved' if r.resolved else 'unresolved'}"})


def overdue(whistle: sv.Whistle, now: datetime) -> list[str]:
    """The summoned units that have not reported in by their due time."""
    return [s.unit_id for s in whistle.summoned if not s.HasField("reported_at") and pb.dt(s.due) < now]


def decide(before: sv.Whistle | None, wid: str, request: Message, actor: Principal, now: datetime, rules: Rules,
           unit_type: UnitType) -> Decision[sv.Whistle]:
    if isinstance(request, sv.BlowWhistleRequest):
        return blow(before, wid, request, actor, now, rules, unit_type)
    if isinstance(request, sv.ReportInRequest):
        return report_in(before, request, actor, now)
    if isinstance(request, sv.CloseWhistleRequest):
        return close(before, request, actor, now)
    raise TypeError(type(request).__name__)
