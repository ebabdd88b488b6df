"""Four-level supervision (督办), on-site meetings (有请诉求人到场) and merged tickets (并单): the
pure part. No I/O.

A case's supervision (``CaseSupervision``, supervision.proto) holds one record per level raised:

1. system (系统督办) - raised automatically: on an unsatisfied or unresolved evaluation and on
   an overdue deadline (the timers' OverdueSupervisionRaised; both through the consumer,
   escalation_handlers.py), and on a deputy's escalation (deputy_escalation.py);
2. supervision letter (督办函) - the office; the letter is a generated document (:func:`letter`);
3. conduct supervisors' visits (作风监督员明察暗访) - the office, which records the visits;
4. leader-led (领导领办) - the office or a leader, naming the leader.

Each record has its deadline (working days per level, from the versioned
``data/supervision_limits.json``), a state (open, resolved, unresolved) and an outcome; a
level can be raised again once closed. The case's ``supervision_level`` is the highest open
level, and this module is its one writer (saved with the records, in one transaction). An
archived case keeps the highest level it had; an automatic raise applied after the case closed
is still recorded (a trigger from before the closing closes with the case, a later one stays
open for the office), while a person cannot raise supervision on an archived case. Joint
supervision with the discipline commission (纪委监委) is a flag on the case.

``decide(state, request, actor, now, rules)`` returns the kit's Decision or raises a
DomainError, like the lifecycle's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from jinja2 import Environment, select_autoescape

from hotline import pb
from hotline.auth import Principal
from hotline.commands import Decision, DomainError, Illegal, Invalid, NotFound
from hotline.policy import Role
from hotline.v1 import case_pb2, events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.cases.lifecycle import Deadlines

LIMITS_FILE = Path(__file__).parent.parent / "data" / "supervision_limits.json"
LEVELS = (1, 2, 3, 4)
LEVEL_NAMES = {1: "系统督办", 2: "督办函督办", 3: "作风监督员明察暗访", 4: "领导领办督办"}
OPEN, RESOLVED, UNRESOLVED = sv.SUPERVISION_STATE_OPEN, sv.SUPERVISION_STATE_RESOLVED, sv.SUPERVISION_STATE_UNRESOLVED
ARCHIVED = events_pb2.CASE_STATE_ARCHIVED
MAX_TEXT = 2000


@dataclass(frozen=True)
class Rules:
    """The versioned limits (data/supervision_limits.json) and the working-day calendar."""

    version: str
    level_days: Mapping[int, int]
    report_in_hours: int
    deadlines: Deadlines
    tz: ZoneInfo

    @classmethod
    def load(cls, deadlines: Deadlines, tz: ZoneInfo, path: Path = LIMITS_FILE) -> Rules:
        data = json.loads(path.read_text("utf-8"))
        days = {int(k): int(v["working_days"]) for k, v in data["levels"].items()}
        if sorted(days) != list(LEVELS) or min(days.values()) < 1:
            raise ValueError(f"{path}: levels 1-4 need a limit of at least one working day")
        hours = int(data["whistle"]["report_in_hours"])
        if hours < 1:
            raise ValueError(f"{path}: whistle.report_in_hours must be positive")
        return cls(str(data["version"]), days, hours, deadlines, tz)


@dataclass
class Supervised:
    """The aggregate a supervision command changes: the case (read, and its level mirrored) and
    its supervision; ``children``: the cases merged under it (a merge only)."""

    case: events_pb2.Case
    supervision: sv.CaseSupervision
    children: dict[str, Supervised] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:  # as the audit trail keeps it
        return {"supervision": pb.to_doc(self.supervision), "supervision_level": self.case.supervision_level}

    def copy(self) -> Supervised:
        """The case and its supervision, copied to be changed (the children are not)."""
        out = Supervised(events_pb2.Case(), sv.CaseSupervision())
        out.case.CopyFrom(self.case)
        out.supervision.CopyFrom(self.supervision)
        out.supervision.ticket_id = self.case.ticket_id
        return out


def stamp(when: datetime) -> Timestamp:
    """A Timestamp at the store's precision (pb.ts, never None)."""
    out = pb.ts(when)
    assert out is not None
    return out


def actor_of(p: Principal) -> case_pb2.Actor:
    return case_pb2.Actor(subject=p.subject, role=str(p.role), unit_id=p.unit_id)


def _text(value: str, what: str, required: bool = True) -> str:
    text = value.strip()
    if required and not text:
        raise Invalid(f"{what} is required")
    if len(text) > MAX_TEXT:
        raise Invalid(f"{what} is longer than {MAX_TEXT} characters")
    return text


def open_record(s: sv.CaseSupervision, level: int) -> sv.SupervisionRecord | None:
    return next((r for r in s.records if r.level == level and r.state == OPEN), None)


def open_at(s: sv.CaseSupervision, level: int, when: datetime) -> sv.SupervisionRecord | None:
    """The record of ``level`` that was open at ``when`` (it may have closed since)."""
    return next((r for r in s.records if r.level == level and pb.dt(r.raised_at) <= when
                 and (r.state == OPEN or when <= pb.dt(r.closed_at))), None)


def highest_open(s: sv.CaseSupervision) -> int:
    return max((r.level for r in s.records if r.state == OPEN), default=0)


def involves(case: events_pb2.Case, unit_id: str) -> bool:
    return unit_id in {u.unit_id for u in (case.primary_unit, *case.assisting_units)}


def visible(state: Supervised | None, ticket_id: str, who: Principal) -> Supervised:
    """The case's supervision if ``who`` may see it (a unit: cases it handles or assists)."""
    if state is None or (who.role == Role.UNIT and not involves(state.case, who.unit_id)):
        raise NotFound("case", ticket_id)
    return state


class _Change:
    def __init__(self, before: Supervised, actor: Principal, now: datetime) -> None:
        self.state = before.copy()
        self.actor = actor
        self.now = now
        self.events: list[Message] = []

    @property
    def s(self) -> sv.CaseSupervision:
        return self.state.supervision

    def done(self, event: type[Message], detail: str, **fields: Any) -> Decision[Supervised]:
        self.s.level = highest_open(self.s)
        case = self.state.case
        # an archived case keeps the highest level it had: the one it closed with, or one raised since
        case.supervision_level = max(case.supervision_level, self.s.level) if case.state == ARCHIVED else self.s.level
        self.s.revision += 1
        snapshot = sv.CaseSupervision()
        snapshot.CopyFrom(self.s)
        if event is sv.SupervisionRaised:  # with the case, so the raised level reaches the KPI facts
            fields["case"] = case
        self.events.append(event(supervision=snapshot, actor=actor_of(self.actor), occurred_at=pb.ts(self.now),
                                 **fields))
        return Decision(self.state, events=list(self.events), answer=snapshot, audit={"detail": detail})


def _raise(before: Supervised, r: sv.RaiseSupervisionRequest, actor: Principal, now: datetime,
           rules: Rules) -> Decision[Supervised]:
    if r.level not in LEVELS:
        raise Invalid(f"level must be 1-4, not {r.level}")
    if r.level == 1 and actor.role != Role.SYSTEM:
        raise Invalid("level 1 (系统督办) is raised by the system only (overdue, unsatisfied evaluation)")
    if r.level == 4 and actor.role not in (Role.OFFICE, Role.LEADER, Role.SYSTEM):
        raise Invalid("level 4 is raised by the office or a leader")
    reason = _text(r.reason, "a reason")
    archived = before.case.state == ARCHIVED
    if archived and actor.role != Role.SYSTEM:
        raise Illegal(f"case {before.case.ticket_id} is archived; supervision cannot be raised")
    if actor.role == Role.SYSTEM and (open_record(before.supervision, r.level) or
                                      open_at(before.supervision, r.level, now)):
        # the system raises a level once while it is open (or was, when its trigger happened)
        return Decision(None, answer=before.supervision, audit={"detail": f"level {r.level} already open"})
    if (current := open_record(before.supervision, r.level)) is not None:
        raise Illegal(f"level {r.level} is already open for {before.case.ticket_id} ({current.record_id})")
    change = _Change(before, actor, now)
    n = 1 + sum(1 for x in change.s.records if x.level == r.level)
    record = change.s.records.add(
        record_id=f"{before.case.ticket_id}/L{r.level}/{n}", level=r.level, state=OPEN, reason=reason,
        raised_at=pb.ts(now), due=pb.ts(rules.deadlines.working_days_after(now, rules.level_days[r.level])),
        raised_by=actor_of(actor), limits_version=rules.version, leader=_text(r.leader, "leader", r.level == 4))
    if r.level == 2:
        record.letter_number = f"督字〔{now.astimezone(rules.tz).year}〕{before.case.ticket_id}-{n}号"
    if r.joint_discipline and not change.s.joint_discipline:
        change.s.joint_discipline = True
        change.s.joint_reason = reason
    if archived:  # an automatic raise applied after the case closed (its trigger may be older): recorded all the
        # same, and the case keeps the level; raised while the case was open, it closed with the case
        change.state.case.supervision_level = max(change.state.case.supervision_level, r.level)
        if now <= pb.dt(before.case.closed_at):
            _settle_record(record, before.case, pb.dt(before.case.closed_at), actor)
    raised = sv.SupervisionRecord()
    raised.CopyFrom(record)
    return change.done(sv.SupervisionRaised, f"{LEVEL_NAMES[r.level]} raised, due {pb.dt(record.due).isoformat()}",
                       record=raised)


def _close(before: Supervised, r: sv.CloseSupervisionRequest, actor: Principal, now: datetime,
           rules: Rules) -> Decision[Supervised]:
    change = _Change(before, actor, now)
    record = open_record(change.s, r.level)
    if record is None:
        raise Illegal(f"no open level {r.level} supervision on {before.case.ticket_id}")
    record.outcome = _text(r.outcome, "an outcome")
    record.state = RESOLVED if r.resolved else UNRESOLVED
    record.closed_at.CopyFrom(stamp(now))
    record.closed_by.CopyFrom(actor_of(actor))
    record.on_time = now <= pb.dt(record.due)
    closed = sv.SupervisionRecord()
    closed.CopyFrom(record)
    return change.done(sv.SupervisionClosed, f"level {r.level} {sv.SupervisionState.Name(record.state)}",
                       record=closed)


def _visit(before: Supervised, r: sv.RecordVisitRequest, actor: Principal, now: datetime,
           rules: Rules) -> Decision[Supervised]:
    change = _Change(before, actor, now)
    record = open_record(change.s, 3)
    if record is None:
        raise Illegal("visits are recorded on an open level 3 supervision (作风监督员明察暗访)")
    visited = pb.dt(r.visited_at) if r.HasField("visited_at") else now
    if visited > now:
        raise Invalid("a visit cannot be recorded before it took place")
    record.visits.add(supervisor=_text(r.supervisor, "the supervisor"), covert=r.covert, visited_at=pb.ts(visited),
                      findings=_text(r.findings, "the findings"), recorded_by=actor_of(actor))
    return change.done(sv.SupervisionUpdated, "暗访" if r.covert else "明察", change="visit")


def _joint(before: Supervised, r: sv.SetJointSupervisionRequest, actor: Principal, now: datetime,
           rules: Rules) -> Decision[Supervised]:
    change = _Change(before, actor, now)
    if change.s.joint_discipline == r.joint:
        raise Illegal(f"joint supervision is already {'on' if r.joint else 'off'}")
    change.s.joint_discipline = r.joint
    change.s.joint_reason = _text(r.reason, "a reason")
    return change.done(sv.SupervisionUpdated, f"joint supervision {'on' if r.joint else 'off'}", change="joint")


def _schedule(before: Supervised, r: sv.ScheduleMeetingRequest, actor: Principal, now: datetime,
              rules: Rules) -> Decision[Supervised]:
    if not r.HasField("scheduled_at"):
        raise Invalid("scheduled_at is required")
    if before.case.state == ARCHIVED:
        raise Illegal("the case is archived")
    if before.supervision.meeting.outcome:
        raise Illegal("the on-site meeting already took place")
    change = _Change(before, actor, now)
    change.s.meeting.CopyFrom(sv.OnSiteMeeting(scheduled_at=r.scheduled_at, place=_text(r.place, "the place"),
                                               flagged_by=actor_of(actor)))
    return change.done(sv.SupervisionUpdated, "有请诉求人到场", change="meeting_scheduled")


def _held(before: Supervised, r: sv.RecordMeetingRequest, actor: Principal, now: datetime,
          rules: Rules) -> Decision[Supervised]:
    if not before.supervision.HasField("meeting"):
        raise Illegal("no on-site meeting is scheduled for this case")
    if before.supervision.meeting.outcome:
        raise Illegal("the meeting's outcome is already recorded")
    if actor.role == Role.UNIT and before.case.primary_unit.unit_id != actor.unit_id:
        raise DomainError("permission_denied", "only the case's primary unit records the meeting's outcome")
    change = _Change(before, actor, now)
    held = pb.dt(r.held_at) if r.HasField("held_at") else now
    if held > now:
        raise Invalid("a meeting's outcome cannot be recorded before it took place")
    change.s.meeting.outcome = _text(r.outcome, "the outcome")
    change.s.meeting.held_at.CopyFrom(stamp(held))
    return change.done(sv.SupervisionUpdated, "到场会商结果", change="meeting_held")


DECIDERS: dict[type[Message], Any] = {
    sv.RaiseSupervisionRequest: _raise, sv.CloseSupervisionRequest: _close, sv.RecordVisitRequest: _visit,
    sv.SetJointSupervisionRequest: _joint, sv.ScheduleMeetingRequest: _schedule, sv.RecordMeetingRequest: _held,
}


def decide(state: Supervised | None, request: Message, actor: Principal, now: datetime,
           rules: Rules) -> Decision[Supervised]:
    ticket_id = str(getattr(request, "ticket_id", ""))
    before = visible(state, ticket_id, actor)
    return DECIDERS[type(request)](before, request, actor, now, rules)  # type: ignore[no-any-return]


CLOSURE_NAMES = {case_pb2.CLOSURE_SATISFIED: "回访满意结案", case_pb2.CLOSURE_EXPLAINED: "说明情况结案",
                 case_pb2.CLOSURE_MERGED: "并单随主件办结"}
SOLVED = (case_pb2.CLOSURE_SATISFIED, case_pb2.CLOSURE_MERGED)


def settle(state: Supervised | None, closed: events_pb2.Case, now: datetime) -> Decision[Supervised]:
    """The case closed: its open supervision closes with it, resolved when the citizen was
    satisfied (or it closed with its parent), unresolved when the office closed it with an
    explanation. Once: nothing open, nothing to do. ``now`` is when the case closed: a record
    raised after that (a deputy escalating the closed case) stays open for the office, also when
    the CaseClosed is read again (a replay)."""
    if state is None:
        raise NotFound("case", closed.ticket_id)
    if highest_open(state.supervision) == 0:
        return Decision(None, answer=state.supervision, audit={"detail": "no open supervision"})
    if not any(r.state == OPEN and pb.dt(r.raised_at) <= now for r in state.supervision.records):
        return Decision(None, answer=state.supervision, unchanged=True)  # all raised after the close
    change = _Change(state, Principal.system("supervision"), now)
    for record in change.s.records:
        if record.state == OPEN and pb.dt(record.raised_at) <= now:
            _settle_record(record, closed, now, change.actor)
    return change.done(sv.SupervisionUpdated, f"settled with the case: {CLOSURE_NAMES.get(closed.closure, '案件结案')}",
                       change="settled")


def _settle_record(record: sv.SupervisionRecord, closed: events_pb2.Case, at: datetime, actor: Principal) -> None:
    """Close an open record with its case: resolved when the case closed solved, else unresolved."""
    record.state = RESOLVED if closed.closure in SOLVED else UNRESOLVED
    record.outcome = CLOSURE_NAMES.get(closed.closure, "案件结案")
    record.closed_at.CopyFrom(stamp(at))
    record.closed_by.CopyFrom(actor_of(actor))
    record.on_time = at <= pb.dt(record.due)


# ------------------------------------------------------------------------------ resolution rates


def resolution_rates(counts: Mapping[tuple[int, int], int]) -> dict[int, float]:
    """Per level: resolved records of those closed (NaN-free: 0 when none closed).
    ``counts``: (level, SupervisionState) -> number of records."""
    rates: dict[int, float] = {}
    for level in LEVELS:
        resolved = counts.get((level, RESOLVED), 0)
        closed = resolved + counts.get((level, UNRESOLVED), 0)
        rates[level] = resolved / closed if closed else 0.0
    return rates


# ------------------------------------------------------------------------------ the letter (督办函)

_LETTER = Environment(autoescape=select_autoescape(default=True)).from_string("""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>督办函 {{ r.letter_number }}</title></head>
<body>
<h1>区12345热线办 督办函</h1>
<p>{{ r.letter_number }}</p>
<p>{{ unit }}：</p>
<p>工单 {{ c.ticket_id }}（{{ c.category or "—" }}）经回访或时限监测，存在{{ r.reason }}的情况。\
根据《区12345热线工单督办办法》，现予督办。请你单位高度重视，于 <strong>{{ due }}</strong> 前\
办结并将办理情况书面反馈区12345热线办。</p>
{% if joint %}<p>本件为联合区纪委监委督办件。</p>{% endif %}
<p>督办等级：{{ level_name }}　发函时间：{{ raised }}</p>
<p style="text-align:right">区12345政务服务便民热线办公室<br>{{ raised_day }}</p>
</body></html>
""")


def letter(state: Supervised, record: sv.SupervisionRecord, tz: Any) -> str:
    """The supervision letter (督办函) of a level 2 record, as an HTML document in Chinese."""
    raised = pb.dt(record.raised_at).astimezone(tz)
    return _LETTER.render(
        r=record, c=state.case, unit=state.case.primary_unit.name or state.case.primary_unit.unit_id,
        due=pb.dt(record.due).astimezone(tz).strftime("%Y年%m月%d日 %H:%M"), joint=state.supervision.joint_discipline,
        level_name=LEVEL_NAMES[record.level], raised=raised.strftime("%Y年%m月%d日 %H:%M"),
        raised_day=raised.strftime("%Y年%m月%d日"))
