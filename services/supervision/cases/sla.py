"""The SLA policy (时限政策) as data, and the pure resolver ``limits_for(facts, policy)``.

The policy is a versioned JSON document, one of the kit's versioned policies (hotline/policies.py,
named ``sla_policy``): ``data/sla_policy.json`` seeds the store when its version is newer than every
stored one; an administrator saves the next versions at ``PUT /policies/sla_policy``, checked by
:func:`validate` (this module's :func:`parse_policy`). A case is stamped with the version it started
with (``Case.policy_version``) and keeps it for life.

Shape of a policy::

    {"version": 1, "due_soon_fraction": 0.8, "max_extensions": 1,
     "defaults": {"sign_off": {"hours": 24}, "reply": {"working_days": 5}, ... every clock},
     "lanes": [{"name": "emergency", "label": "紧急件", "when": {"urgencies": ["URGENT"]},
                "limits": {"sign_off": {"hours": 2}, "contact": {"hours": 2}}}, ...]}

* A period is one of ``{"minutes": n}``, ``{"hours": n}`` (clock time), ``{"days": n}``
  (24:00 of the n-th calendar day after the start, 0 = the same day) or ``{"working_days": n}``
  (24:00 of the n-th working day after the start day: the rule for periods, see calendar.py).
* Lanes apply in file order to the facts of a case; every matching lane overrides the clocks it
  names, so later (more specific) lanes win. A lane's ``when`` lists conditions that must all
  hold: ``ticket_types``, ``categories``, ``items`` (responsibility-list entries, rule_id),
  ``list_lanes`` / ``list_lanes_none`` (the list item's own ``lane``, carried by the assignment),
  ``urgencies`` (any of), ``tags_any``, ``tags_all``, ``tags_none``, ``received_on_rest_day``,
  ``enterprise`` (``caller.enterprise``), ``deputy`` (a deputy's ticket, source ``deputy``).
  ``when`` may also be a list of such objects: the lane matches when any of them holds.
* ``park_stops`` (optional, default contact and reply): the clocks that stop while a case is
  parked (挂账, approved by the office); they resume later by the time parked. ``park_progress``
  is the period of the progress reports a parked case owes (a timer with due-soon and overdue).
* ``case_lanes`` (optional) is the one definition of a case's lane for the figures (KPI ``lane``
  dimension, reports): ``[{"name": "deputy", "label": ..., "when": ...}, ...]``, the first that
  matches names the case's lane (``Case.lane``), else ``normal``. Metrics reads it from the case.
* ``overdue_levels`` (optional): ``{clock: 0 or 1}``, what a missed clock raises: 1 = system
  supervision (系统督办, the default for every clock), 0 = the alarm on the board only (the shipped
  policy: the office's own ``deputy_callback``). ``sub_dispatch`` is a community's 加派 limit (the
  street may name a shorter one), ``assist_contribution`` an assisting unit's, from the receipt.
* A limit the city sets on the ticket (``time_limit_working_days``) replaces the default reply
  limit, and no lane may make the reply later than it (the city is the superior platform).
* Clocks: dispatch, sign_off and contact run from the assignment; reply from the city's receipt;
  extension is the longest extension a unit may ask (``max_extensions`` times); return is the
  window in which a unit may send a ticket back; the two decisions run from the request.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from hotline import pb
from hotline.calendar import WorkCalendar
from hotline.policies import PolicyInvalid
from hotline.v1 import deadlines_pb2, events_pb2, ticket_pb2


class SlaClock(StrEnum):
    DISPATCH = "dispatch"  # 派单
    SIGN_OFF = "sign_off"  # 签收
    CONTACT = "contact"  # 首次联系
    REPLY = "reply"  # 办结反馈
    EXTENSION = "extension"  # 延期: the longest extension a unit may ask
    EXTENSION_DECISION = "extension_decision"  # 延期审批
    RETURN = "return"  # 退单: the window to send a ticket back
    RETURN_DECISION = "return_decision"  # 退单审核
    DEPUTY_CALLBACK = "deputy_callback"  # 回访: the office may record it when a deputy has not rated by then
    PARK_PROGRESS = "park_progress"  # 挂账进展: the monthly progress report of a parked case
    ASSIST_SIGN_OFF = "assist_sign_off"  # 协办签收: an assisting unit signs for its sub-case
    ASSIST_CONTRIBUTION = "assist_contribution"  # 协办意见: an assisting unit contributes
    SUPERVISION = "supervision"  # 督办: the open level's own limit (data/supervision_limits.json)
    SUB_DISPATCH = "sub_dispatch"  # 加派: a community handles what its street sent on (routing's SubDispatched)
    WHISTLE_REPORT_IN = "whistle_report_in"  # 吹哨报到: a summoned unit reports in (supervision_limits.json)

    @property
    def proto(self) -> deadlines_pb2.DeadlineClock.ValueType:
        return deadlines_pb2.DeadlineClock.Value(f"DEADLINE_CLOCK_{self.name}")


# Clocks that run as timers (due-soon and overdue alarms); the other two are windows and caps.
TIMED_CLOCKS = (SlaClock.DISPATCH, SlaClock.SIGN_OFF, SlaClock.CONTACT, SlaClock.REPLY,
                SlaClock.EXTENSION_DECISION, SlaClock.RETURN_DECISION, SlaClock.PARK_PROGRESS,
                SlaClock.ASSIST_SIGN_OFF, SlaClock.ASSIST_CONTRIBUTION, SlaClock.SUPERVISION,
                SlaClock.DEPUTY_CALLBACK, SlaClock.SUB_DISPATCH, SlaClock.WHISTLE_REPORT_IN)
PER_UNIT_CLOCKS = (SlaClock.ASSIST_SIGN_OFF, SlaClock.ASSIST_CONTRIBUTION,  # one timer per unit: <clock>_<unit>
                   SlaClock.SUB_DISPATCH, SlaClock.WHISTLE_REPORT_IN)


def clock_of(kind: str) -> SlaClock:
    """The clock of a timer kind: the clock itself, or a per-unit clock's ``<clock>_<unit>``."""
    if kind in SlaClock.__members__.values():
        return SlaClock(kind)
    for clock in sorted(PER_UNIT_CLOCKS, key=lambda c: -len(c.value)):  # the longest name first
        if kind.startswith(clock.value + "_"):
            return clock
    raise ValueError(f"no clock for timer kind {kind!r}")


def unit_kind(clock: SlaClock, unit_id: str) -> str:
    """The timer kind of a per-unit clock (a field name: lower case letters, digits, _)."""
    return f"{clock.value}_{re.sub(r'[^a-z0-9_]', '_', unit_id.lower())}"[:40]


class Unit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"
    WORKING_DAYS = "working_days"


# Clocks added after the first policy versions: a stored version without them gets these limits.
LATER_CLOCKS: dict[SlaClock, Period] = {}


MAX_AMOUNT = {Unit.MINUTES: 7 * 24 * 60, Unit.HOURS: 31 * 24, Unit.DAYS: 60, Unit.WORKING_DAYS: 60}


@dataclass(frozen=True)
class Period:
    amount: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.value}"


LATER_CLOCKS.update({SlaClock.DEPUTY_CALLBACK: Period(5, Unit.WORKING_DAYS),
                     SlaClock.PARK_PROGRESS: Period(30, Unit.DAYS),
                     # informational: an assisting unit's sign-off due is the primary's (stamped on its
                     # sub-case when the case opens); its contribution due is this policy's
                     # assist_contribution from the city's receipt (never after the reply's)
                     SlaClock.ASSIST_SIGN_OFF: Period(24, Unit.HOURS),
                     SlaClock.ASSIST_CONTRIBUTION: Period(3, Unit.WORKING_DAYS),
                     # informational: a level's limit is its record's due (supervision_limits.json: 3/5/5/10)
                     SlaClock.SUPERVISION: Period(3, Unit.WORKING_DAYS),
                     # 加派: the community's limit from the sub-dispatch (the street may name a shorter one)
                     SlaClock.SUB_DISPATCH: Period(2, Unit.WORKING_DAYS),
                     # informational: a summons' due is set when the whistle is blown (supervision_limits.json)
                     SlaClock.WHISTLE_REPORT_IN: Period(24, Unit.HOURS)})
PARK_STOPPABLE = (SlaClock.CONTACT, SlaClock.REPLY)  # the clocks a parked case may stop (park_stops)


class PolicyError(ValueError):
    """A policy document that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class CaseFacts:
    """What the policy looks at. Enum values by full name (``URGENCY_URGENT``)."""

    ticket_type: str = "TICKET_TYPE_UNSPECIFIED"
    category: str = ""
    item: str = ""  # responsibility-list entry (rule_id)
    urgency: str = "URGENCY_NORMAL"
    tags: frozenset[str] = frozenset()
    received_on_rest_day: bool = False
    city_reply_working_days: int = 0
    list_lane: str = ""  # the list item's lane (Assignment.lane)
    enterprise: bool = False  # caller.enterprise (涉企)
    deputy: bool = False  # a deputy's ticket (人大代表转办, source "deputy")

    @classmethod
    def of(cls, assigned: events_pb2.TicketAssigned, received_at: datetime, calendar: WorkCalendar) -> CaseFacts:
        return cls(
            ticket_type=ticket_pb2.TicketType.Name(assigned.ticket_type),
            category=assigned.assignment.category,
            item=assigned.assignment.rule_id,
            urgency=ticket_pb2.Urgency.Name(assigned.urgency or ticket_pb2.URGENCY_NORMAL),
            tags=frozenset(assigned.tags),
            received_on_rest_day=not calendar.is_workday(calendar.local_day(received_at)),
            city_reply_working_days=assigned.time_limit_working_days,
            list_lane=assigned.assignment.lane,
            enterprise=assigned.enterprise,
            deputy=assigned.source == "deputy",
        )


@dataclass(frozen=True)
class Match:
    ticket_types: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    items: frozenset[str] = frozenset()
    urgencies: frozenset[str] = frozenset()
    tags_any: frozenset[str] = frozenset()
    tags_all: frozenset[str] = frozenset()
    tags_none: frozenset[str] = frozenset()
    list_lanes: frozenset[str] = frozenset()
    list_lanes_none: frozenset[str] = frozenset()
    received_on_rest_day: bool | None = None
    enterprise: bool | None = None
    deputy: bool | None = None

    def matches(self, f: CaseFacts) -> bool:
        return (
            (not self.ticket_types or f.ticket_type in self.ticket_types)
            and (not self.categories or f.category in self.categories)
            and (not self.items or f.item in self.items)
            and (not self.list_lanes or f.list_lane in self.list_lanes)
            and f.list_lane not in self.list_lanes_none
            and (self.enterprise is None or self.enterprise == f.enterprise)
            and (self.deputy is None or self.deputy == f.deputy)
            and (not self.urgencies or f.urgency in self.urgencies)
            and (not self.tags_any or bool(self.tags_any & f.tags))
            and self.tags_all <= f.tags
            and not (self.tags_none & f.tags)
            and (self.received_on_rest_day is None or self.received_on_rest_day == f.received_on_rest_day)
        )


@dataclass(frozen=True)
class Lane:
    name: str
    label: str
    when: tuple[Match, ...]  # any of
    limits: Mapping[SlaClock, Period]

    def matches(self, f: CaseFacts) -> bool:
        return any(m.matches(f) for m in self.when)


@dataclass(frozen=True)
class Policy:
    version: int
    due_soon_fraction: float
    max_extensions: int
    defaults: Mapping[SlaClock, Period]
    lanes: tuple[Lane, ...]
    doc: Mapping[str, Any] = field(compare=False, repr=False)  # the document as stored
    case_lanes: tuple[Lane, ...] = ()  # the case's lane for the figures: the first that matches
    park_stops: tuple[SlaClock, ...] = PARK_STOPPABLE  # the clocks that stop while a case is parked (挂账)
    overdue_levels: Mapping[SlaClock, int] = field(default_factory=dict)  # what a miss raises; default level 1

    def case_lane(self, facts: CaseFacts) -> str:
        """The one lane of a case for the figures (Case.lane, the KPI ``lane`` dimension)."""
        return next((lane.name for lane in self.case_lanes if lane.matches(facts)), NORMAL_LANE)


@dataclass(frozen=True)
class Limits:
    """The limits of one case, per clock, and how to turn them into due times."""

    policy_version: int
    periods: Mapping[SlaClock, Period]
    lanes: tuple[str, ...]
    due_soon_fraction: float
    max_extensions: int
    reply_cap: Period | None = None  # the city's own limit: no reply due later than it
    park_stops: tuple[SlaClock, ...] = PARK_STOPPABLE
    overdue_levels: Mapping[SlaClock, int] = field(default_factory=dict)

    def overdue_level(self, clock: SlaClock) -> int:
        """The supervision level a miss of ``clock`` raises: 1 (系统督办) unless the policy's
        ``overdue_levels`` says 0 (an alarm on the board only, e.g. the office's own callback)."""
        return self.overdue_levels.get(clock, OVERDUE_LEVEL)

    def due(self, clock: SlaClock, start: datetime, calendar: WorkCalendar) -> datetime:
        due = deadline(start, self.periods[clock], calendar)
        if clock == SlaClock.REPLY and self.reply_cap is not None:
            due = min(due, deadline(start, self.reply_cap, calendar))
        return due

    def warn_at(self, start: datetime, due: datetime) -> datetime:
        """The due-soon moment: ``due_soon_fraction`` of the span from start to due, clock time."""
        return pb.millis(start + (due - start) * self.due_soon_fraction)


def deadline(start: datetime, period: Period, calendar: WorkCalendar) -> datetime:
    """When a period starting at ``start`` ends (UTC): clock time for minutes and hours, the
    rule for periods (24:00 local of the last day) for days and working days."""
    match period.unit:
        case Unit.MINUTES:
            end = start + timedelta(minutes=period.amount)
        case Unit.HOURS:
            end = start + timedelta(hours=period.amount)
        case Unit.DAYS:
            end = calendar.days_end(start, period.amount)
        case Unit.WORKING_DAYS:
            end = calendar.working_days_end(start, period.amount)
    return pb.millis(end.astimezone(start.tzinfo))


def limits_for(facts: CaseFacts, policy: Policy) -> Limits:
    """The limits a case with these facts gets under this policy (pure)."""
    lanes = [lane.name for lane in policy.lanes if lane.matches(facts)]
    return limits_of(policy, lanes, facts.city_reply_working_days)


def limits_of(policy: Policy, lanes: Sequence[str], city_reply_working_days: int = 0) -> Limits:
    """The limits of a case rebuilt from what the case keeps: its policy version, the lanes that
    matched it (``Case.sla_lanes``) and the city's own limit, if any."""
    periods = dict(policy.defaults)
    cap = None
    if city_reply_working_days > 0:
        cap = Period(city_reply_working_days, Unit.WORKING_DAYS)
        periods[SlaClock.REPLY] = cap
    for lane in policy.lanes:
        if lane.name in lanes:
            periods.update(lane.limits)
    matched = tuple(lane.name for lane in policy.lanes if lane.name in lanes)
    return Limits(policy.version, periods, matched, policy.due_soon_fraction, policy.max_extensions, cap,
                  policy.park_stops, policy.overdue_levels)


# -- parsing and validation ----------------------------------------------------------------------

POLICY_NAME = "sla_policy"  # among the versioned policies (hotline/policies.py): GET/PUT /policies/sla_policy
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PROBLEM_FIELD = re.compile(r"^([a-z_]+(?:\[\d+\])?)(?: \([^)]*\))?((?:\.[a-z_]+)*)(?::| must)")  # a lane's name aside
TOP_KEYS = {"version", "name", "effective_from", "source", "due_soon_fraction", "max_extensions", "defaults",
            "lanes", "case_lanes", "park_stops", "overdue_levels"}
OVERDUE_LEVEL = 1  # a missed clock raises system supervision (系统督办) unless overdue_levels says 0
NORMAL_LANE = "normal"  # a case no case lane matches
LANE_KEYS = {"name", "label", "when", "limits"}
SET_CONDITIONS = ("ticket_types", "categories", "items", "urgencies", "tags_any", "tags_all", "tags_none",
                  "list_lanes", "list_lanes_none")
BOOL_CONDITIONS = ("received_on_rest_day", "enterprise", "deputy")
ENUMS = {"ticket_types": ("TICKET_TYPE_", ticket_pb2.TicketType), "urgencies": ("URGENCY_", ticket_pb2.Urgency)}


def parse_policy(doc: Mapping[str, Any]) -> Policy:
    """Check a policy document and build the :class:`Policy`; :class:`PolicyError` lists every
    problem (unknown keys are problems too: a typo must not silently change nothing)."""
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        raise PolicyError(["a policy is a JSON object"])
    extra = {k for k in doc if not k.startswith("_")} - TOP_KEYS
    if extra:
        problems.append(f"unknown keys {sorted(extra)}")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append("version must be a positive integer")
        version = 0
    fraction = doc.get("due_soon_fraction", 0.8)
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 < fraction < 1:
        problems.append("due_soon_fraction must be a number between 0 and 1 (exclusive)")
        fraction = 0.8
    max_extensions = doc.get("max_extensions", 1)
    if not isinstance(max_extensions, int) or isinstance(max_extensions, bool) or not 0 <= max_extensions <= 3:
        problems.append("max_extensions must be an integer 0..3")
        max_extensions = 1
    defaults = _limits(doc.get("defaults"), "defaults", problems)
    missing = [c.value for c in SlaClock if c not in defaults and c not in LATER_CLOCKS]
    defaults = {**LATER_CLOCKS, **defaults}
    if isinstance(doc.get("defaults"), Mapping) and missing:
        problems.append(f"defaults: every clock needs a limit, missing {missing}")
    lanes: list[Lane] = []
    raw_lanes = doc.get("lanes", [])
    if not isinstance(raw_lanes, list):
        problems.append("lanes must be a list")
        raw_lanes = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_lanes):
        lane = _lane(raw, f"lanes[{i}]", problems)
        if lane is None:
            continue
        if lane.name in seen:
            problems.append(f"lanes[{i}]: lane name {lane.name!r} is used twice")
        seen.add(lane.name)
        lanes.append(lane)
    case_lanes: list[Lane] = []
    raw_case = doc.get("case_lanes", [])
    if not isinstance(raw_case, list):
        problems.append("case_lanes must be a list")
        raw_case = []
    for i, raw in enumerate(raw_case):
        lane = _lane(raw, f"case_lanes[{i}]", problems, marker=True)
        if lane is None:
            continue
        if lane.name in {c.name for c in case_lanes} | {NORMAL_LANE}:
            problems.append(f"case_lanes[{i}]: lane name {lane.name!r} is used twice (or is {NORMAL_LANE!r})")
        case_lanes.append(lane)
    raw_stops = doc.get("park_stops", [c.value for c in PARK_STOPPABLE])
    stoppable = [c.value for c in PARK_STOPPABLE]
    if not isinstance(raw_stops, list) or not all(isinstance(c, str) and c in stoppable for c in raw_stops):
        problems.append(f"park_stops must be a list of clocks among {stoppable}")
        raw_stops = stoppable
    overdue_levels = _overdue_levels(doc.get("overdue_levels", {}), problems)
    if problems:
        raise PolicyError(problems)
    return Policy(version, float(fraction), max_extensions, defaults, tuple(lanes), copy.deepcopy(dict(doc)),
                  tuple(case_lanes), tuple(SlaClock(c) for c in dict.fromkeys(raw_stops)), overdue_levels)


def _overdue_levels(raw: Any, problems: list[str]) -> dict[SlaClock, int]:
    """``overdue_levels``: {clock: 0 or 1}, what a missed clock raises (1 = 系统督办, 0 = the alarm only)."""
    clocks = [c.value for c in TIMED_CLOCKS]
    if not isinstance(raw, Mapping) or not all(
            k in clocks and isinstance(v, int) and not isinstance(v, bool) and v in (0, 1) for k, v in raw.items()):
        problems.append(f"overdue_levels must map clocks among {clocks} to 0 (alarm only) or 1 (系统督办)")
        return {}
    return {SlaClock(k): int(v) for k, v in raw.items()}


def validate(doc: Any) -> None:
    """The check of a new version (hotline.policies.Validate): :func:`parse_policy`, whatever the
    document says its version is (the store numbers it). The refusal lists every problem and names
    the field of the first (``field``, a dotted path such as ``lanes[2].limits.reply``)."""
    if not isinstance(doc, Mapping):
        raise PolicyInvalid("", "a policy is a JSON object")
    try:
        parse_policy({**doc, "version": 1})
    except PolicyError as exc:
        refusal = PolicyInvalid("", str(exc))  # every problem, in parse_policy's words
        found = PROBLEM_FIELD.match(exc.problems[0])
        refusal.field = found.group(1) + found.group(2) if found else ""
        raise refusal from exc


def _period(raw: Any, where: str, problems: list[str]) -> Period | None:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        problems.append(f"{where}: a period is one of {{minutes|hours|days|working_days: n}}")
        return None
    (unit_name, amount), = raw.items()
    if unit_name not in Unit.__members__.values():
        problems.append(f"{where}: unknown unit {unit_name!r}")
        return None
    unit = Unit(unit_name)
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= MAX_AMOUNT[unit]:
        problems.append(f"{where}: {unit.value} must be an integer 0..{MAX_AMOUNT[unit]}")
        return None
    if amount == 0 and unit != Unit.DAYS:
        problems.append(f"{where}: a limit of 0 {unit.value} leaves no time (use days: 0 for the same day)")
        return None
    return Period(amount, unit)


def _limits(raw: Any, where: str, problems: list[str]) -> dict[SlaClock, Period]:
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object of clock: period")
        return {}
    out: dict[SlaClock, Period] = {}
    for name, value in raw.items():
        if name not in SlaClock.__members__.values():
            problems.append(f"{where}: unknown clock {name!r} (clocks: {[c.value for c in SlaClock]})")
            continue
        period = _period(value, f"{where}.{name}", problems)
        if period is not None:
            out[SlaClock(name)] = period
    return out


def _lane(raw: Any, where: str, problems: list[str], marker: bool = False) -> Lane | None:
    """A lane of limits, or (``marker``) a case lane: a name and its conditions, no limits."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object")
        return None
    extra = {k for k in raw if not k.startswith("_")} - (LANE_KEYS - {"limits"} if marker else LANE_KEYS)
    if extra:
        problems.append(f"{where}: unknown keys {sorted(extra)}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(f"{where}: name must be lower_snake_case (it becomes a metric label value)")
        name = "?"
    where = f"{where} ({name})"
    raw_when = raw.get("when", {})
    alternatives = raw_when if isinstance(raw_when, list) and raw_when else [raw_when]
    matches = [_match(w, where, problems) for w in alternatives]
    if marker:
        limits: dict[SlaClock, Period] = {}
    else:
        limits = _limits(raw.get("limits"), f"{where}.limits", problems)
        if not limits and isinstance(raw.get("limits"), Mapping):
            problems.append(f"{where}: a lane must set at least one limit")
    if any(m is None for m in matches):
        return None
    return Lane(name, str(raw.get("label", "")), tuple(m for m in matches if m is not None), limits)


def _match(raw: Any, where: str, problems: list[str]) -> Match | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}.when must be an object")
        return None
    extra = set(raw) - set(SET_CONDITIONS) - set(BOOL_CONDITIONS)
    if extra:
        problems.append(f"{where}.when: unknown conditions {sorted(extra)}")
    values: dict[str, Any] = {}
    for key in SET_CONDITIONS:
        items = raw.get(key, [])
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            problems.append(f"{where}.when.{key} must be a list of non-empty strings")
            continue
        if key in ENUMS:
            prefix, enum = ENUMS[key]
            full = [v if v.startswith(prefix) else prefix + v.upper() for v in items]
            unknown = [v for v, f in zip(items, full, strict=True) if f not in enum.keys()]
            if unknown:
                problems.append(f"{where}.when.{key}: unknown values {unknown}")
            items = full
        values[key] = frozenset(items)
    for key in BOOL_CONDITIONS:
        flag = raw.get(key)
        if flag is not None and not isinstance(flag, bool):
            problems.append(f"{where}.when.{key} must be true or false")
            flag = None
        values[key] = flag
    return Match(**values)
