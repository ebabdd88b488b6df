"""督办 and 吹哨 figures (issue #22): the KPI projection learns each 督办 record and whistle from the
supervision events (snapshots, so a replay ends the same), and GetKpis and the monthly report give
count, on-time and resolution per level and per whistling unit type, by the KPI policy's
``item_figures`` definitions (services/metrics/kpi_items.py)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from openpyxl import load_workbook

from hotline import pb
from hotline.auth import Principal
from hotline.clock import ManualClock
from hotline.policy import Role
from hotline.v1 import events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.metrics import kpi_items, projection, report
from services.metrics.kpi import CaseFacts, KpiPolicy, Period
from services.metrics.kpi_items import SupervisionFacts, WhistleFacts
from services.metrics.views import Views, parse_filters, window

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
MONTH = Period.parse("2026-11", TZ)
T0 = datetime(2026, 11, 10, 9, 0, tzinfo=TZ)
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)
OPEN, RESOLVED, UNRESOLVED = (sv.SUPERVISION_STATE_OPEN, sv.SUPERVISION_STATE_RESOLVED,
                              sv.SUPERVISION_STATE_UNRESOLVED)


def record(ticket: str, level: int, raised: datetime, due_days: int, state: int = OPEN,
           closed: datetime | None = None) -> sv.SupervisionRecord:
    r = sv.SupervisionRecord(record_id=f"{ticket}/L{level}/1", level=level, state=state, raised_at=pb.ts(raised),
                             due=pb.ts(raised + timedelta(days=due_days)))
    if closed is not None:
        r.closed_at.CopyFrom(pb.ts(closed))
        r.on_time = closed <= raised + timedelta(days=due_days)
    return r


def raised(ticket: str, *records: sv.SupervisionRecord, at: datetime = T0) -> sv.SupervisionRaised:
    s = sv.CaseSupervision(ticket_id=ticket, records=records, level=max(r.level for r in records))
    return sv.SupervisionRaised(supervision=s, record=records[-1], occurred_at=pb.ts(at),
                                case=events_pb2.Case(ticket_id=ticket, supervision_level=s.level))


def closed(ticket: str, *records: sv.SupervisionRecord, at: datetime) -> sv.SupervisionClosed:
    return sv.SupervisionClosed(supervision=sv.CaseSupervision(ticket_id=ticket, records=records),
                                record=records[-1], occurred_at=pb.ts(at))


def whistle(wid: str, by: str, kind: int, blown: datetime, reports: dict[str, datetime | None],
            resolved: bool | None = None, ticket: str = "") -> list[Message]:
    """The events of one whistle: blown, each report-in, closed when ``resolved`` is not None."""
    due = blown + timedelta(hours=24)
    w = sv.Whistle(whistle_id=wid, street_unit_id=by, whistler_type=kind, blown_at=pb.ts(blown), ticket_id=ticket,
                   state=sv.WHISTLE_STATE_OPEN, summoned=[sv.Summons(unit_id=u, due=pb.ts(due)) for u in reports])
    out: list[Message] = [sv.WhistleBlown(whistle=w, occurred_at=pb.ts(blown))]
    for s in w.summoned:
        at = reports[s.unit_id]
        if at is not None:
            s.reported_at.CopyFrom(pb.ts(at))
            s.on_time = at <= due
            out.append(sv.WhistleReportedIn(whistle=w, unit_id=s.unit_id, occurred_at=pb.ts(at)))
    if resolved is not None:
        w.state, w.resolved = sv.WHISTLE_STATE_CLOSED, resolved
        w.closed_at.CopyFrom(pb.ts(blown + timedelta(days=3)))
        out.append(sv.WhistleClosed(whistle=w, occurred_at=w.closed_at))
    return out


def project(stream: list[Message]) -> dict[str, dict[str, dict[str, Any]]]:
    docs: dict[str, dict[str, dict[str, Any]]] = {}
    for u in projection.fold(u for m in stream for u in projection.updates(m)).values():
        projection.apply(docs, u)
    return docs


# T1: level 2 raised, closed resolved within its 5 days; level 3 raised, still open past its due at NOW
# T2: level 2 raised, closed unresolved after its due; T3: level 4 raised on the 27th, open, within its due
L2_T1 = record("T1", 2, T0, 5)
L3_T1 = record("T1", 3, T0 + timedelta(days=1), 5)
L2_T1_DONE = record("T1", 2, T0, 5, RESOLVED, T0 + timedelta(days=2))
L2_T2 = record("T2", 2, T0, 5)
L2_T2_DONE = record("T2", 2, T0, 5, UNRESOLVED, T0 + timedelta(days=8))
L4_T3 = record("T3", 4, datetime(2026, 11, 27, 9, tzinfo=TZ), 14)
STREET, DEPARTMENT = events_pb2.UNIT_TYPE_STREET, events_pb2.UNIT_TYPE_DEPARTMENT
STREAM: list[Message] = [
    raised("T1", L2_T1), raised("T1", L2_T1, L3_T1, at=T0 + timedelta(days=1)),
    closed("T1", L2_T1_DONE, L3_T1, at=T0 + timedelta(days=2)),
    raised("T2", L2_T2), closed("T2", L2_T2_DONE, at=T0 + timedelta(days=8)),
    raised("T3", L4_T3, at=datetime(2026, 11, 27, 9, tzinfo=TZ)),
    # a street office's whistle: both reported in on time, resolved
    *whistle("WH-1", "ST01", STREET, T0, {"DP01": T0 + timedelta(hours=2), "DP02": T0 + timedelta(hours=5)}, True,
             ticket="T1"),
    # a department's whistle: one unit reported in late, closed unresolved
    *whistle("WH-2", "DP01", DEPARTMENT, T0, {"DP02": T0 + timedelta(hours=30)}, False),
    # a department's whistle: nobody reported in and the limit passed long ago; still open
    *whistle("WH-3", "DP03", DEPARTMENT, T0, {"DP02": None}),
    # a street office's whistle of today: within the report-in limit
    *whistle("WH-4", "ST02", STREET, NOW - timedelta(hours=1), {"DP04": None}),
]


def items(stream: list[Message] = STREAM) -> tuple[list[SupervisionFacts], list[WhistleFacts]]:
    docs = project(stream)
    whistles, _ = kpi_items.assemble(docs.get("whistle", {}), {})
    return kpi_items.assemble_records(docs.get("supervision", {})), whistles


def test_the_projection_keeps_each_record_and_whistle_from_the_supervision_events() -> None:
    records, whistles = items()
    by_id = {r.record_id: r for r in records}
    assert set(by_id) == {"T1/L2/1", "T1/L3/1", "T2/L2/1", "T3/L4/1"}
    assert by_id["T1/L2/1"].resolved and by_id["T1/L2/1"].on_time and by_id["T1/L2/1"].closed_at is not None
    assert by_id["T2/L2/1"].closed_at is not None and not by_id["T2/L2/1"].resolved
    assert not by_id["T2/L2/1"].on_time
    assert by_id["T1/L3/1"].closed_at is None and by_id["T1/L3/1"].due == pb.dt(L3_T1.due)
    assert {w.whistle_id: w.unit_type for w in whistles} == {"WH-1": "street", "WH-2": "department",
                                                             "WH-3": "department", "WH-4": "street"}
    assert whistles[0].report_due == T0 + timedelta(hours=24) and whistles[0].ticket_id == "T1"
    # applied again, and every event twice: the same documents (snapshots, $set only)
    assert project(STREAM + STREAM) == project(STREAM)
    # the projection reads the three supervision events (not skipped as unknown types)
    for event in (sv.SupervisionRaised, sv.SupervisionClosed, sv.SupervisionUpdated):
        assert event.DESCRIPTOR.full_name in projection.EVENT_TYPES


def test_count_on_time_and_resolution_per_level_and_whistling_unit_type() -> None:
    records, whistles = items()
    levels = kpi_items.supervision_kpis(records, MONTH.start, MONTH.end, NOW)
    assert {k: f.count for k, f in levels.items()} == {"": 4, "1": 0, "2": 2, "3": 1, "4": 1}
    two = levels["2"]
    assert two.on_time == {"on_time": 1, "late": 1} and two.on_time_rate() == (1, 2)
    assert two.resolution == {"resolved": 1, "unresolved": 1} and two.resolution_rate() == (1, 2)
    assert levels["3"].on_time == {"late": 1}  # open past its due: late already
    assert levels["3"].resolution == {"open": 1} and levels["3"].resolution_rate() == (0, 0)
    assert levels["4"].on_time == {"pending": 1}  # open within its due: not in the rate yet
    assert levels[""].on_time_rate() == (1, 3) and levels[""].resolution_rate() == (1, 2)

    blown = kpi_items.whistle_kpis(whistles, MONTH.start, MONTH.end, NOW)
    assert {k: f.count for k, f in blown.items()} == {"": 4, "street": 2, "department": 2}
    assert blown["street"].on_time == {"on_time": 1, "pending": 1}
    assert blown["department"].on_time == {"late": 2}  # one reported in late, one never by its limit
    assert blown["street"].resolution_rate() == (1, 1) and blown["department"].resolution_rate() == (0, 1)
    # as of a moment before WH-3's limit passed, it was pending (WH-2's report-in is late as stored), and
    # nothing was closed yet
    early = kpi_items.whistle_kpis(whistles, MONTH.start, MONTH.end, T0 + timedelta(hours=20))
    assert early["department"].on_time == {"late": 1, "pending": 1} and early[""].resolution == {"open": 3}


class Store:
    def __init__(self, facts: list[CaseFacts]) -> None:
        self.case_facts = facts

    async def facts(self, policy: KpiPolicy) -> list[CaseFacts]:
        return self.case_facts

    async def items(self) -> tuple[list[WhistleFacts], list[Any]]:
        return items()[1], []

    async def records(self) -> list[SupervisionFacts]:
        return items()[0]


CASES = [CaseFacts("T1", unit_id="DP01", unit_type="department", category="市容环境", assigned_at=T0),
         CaseFacts("T2", unit_id="ST01", unit_type="street", category="物业管理", assigned_at=T0),
         CaseFacts("T3", unit_id="DP01", unit_type="department", category="市容环境", assigned_at=T0)]


def rows(result: Any, kind: str) -> dict[str, tuple[int, tuple[float, int], tuple[float, int]]]:
    return {next(iter(r.key.values()), ""): (r.count, (r.on_time.numerator, r.on_time.denominator),
                                              (r.resolution.numerator, r.resolution.denominator))
            for r in getattr(result, kind)}


async def test_get_kpis_answers_the_figures_with_the_policy_titles_and_filters() -> None:
    views = Views(Store(CASES), POLICY, TZ, ManualClock(NOW))  # type: ignore[arg-type]
    result = await views.kpis(window(TZ, "2026-11"), [], {})
    assert rows(result, "supervision_levels") == {"": (4, (1, 3), (1, 2)), "1": (0, (0, 0), (0, 0)),
                                                  "2": (2, (1, 2), (1, 2)), "3": (1, (0, 1), (0, 0)),
                                                  "4": (1, (0, 0), (0, 0))}
    assert rows(result, "whistles") == {"": (4, (1, 3), (1, 2)), "street": (2, (1, 1), (1, 1)),
                                        "department": (2, (0, 2), (0, 1))}
    level2 = next(r for r in result.supervision_levels if r.key.get("level") == "2")
    assert level2.on_time.title == POLICY.item_title("supervision", "on_time") and level2.on_time.value == 0.5
    assert dict(level2.resolution.counts) == {"resolved": 1, "unresolved": 1}
    assert result.previous.supervision_levels[0].count == 0  # October: nothing raised

    # filters reach the records through their cases; a whistle's unit filter: the whistling or a summoned unit
    dp01 = await views.kpis(window(TZ, "2026-11"), [], parse_filters([("unit", ["DP01"])]))
    assert rows(dp01, "supervision_levels")[""][0] == 3  # T1's two and T3's level 4
    assert rows(dp01, "whistles")[""][0] == 2  # WH-1 (summoned) and WH-2 (whistled)
    category = await views.kpis(window(TZ, "2026-11"), [], parse_filters([("category", ["物业管理"])]))
    assert rows(category, "supervision_levels")[""][0] == 1 and rows(category, "whistles")[""][0] == 0
    level = await views.kpis(window(TZ, "2026-11"), [], parse_filters([("supervision_level", ["2"])]))
    assert rows(level, "supervision_levels") ["2"][0] == 2 and rows(level, "supervision_levels")[""][0] == 2
    # a unit sees the figures of its own cases and whistles only
    mine = await views.kpis(window(TZ, "2026-11"), [], {}, Principal("s", Role.UNIT, unit_id="ST01"))
    assert rows(mine, "supervision_levels")[""][0] == 1 and rows(mine, "whistles")[""][0] == 1


def test_the_monthly_report_shows_the_same_figures() -> None:
    records, whistles = items()
    data = report.build(CASES, POLICY, MONTH, NOW, records, whistles)
    text = "".join(report.summary(data))
    assert "督办4件次，按时办结率33.33%，解决率50.00%" in text and "吹哨4次（街道吹哨2次，部门吹哨2次）" in text
    files = report.render(data)
    assert "六、督办与吹哨" in files["html"].decode() and "督办函督办" in files["html"].decode()
    sheet = load_workbook(io.BytesIO(files["xlsx"]))["督办与吹哨"]
    got = {(r[0], r[1]): r[2:] for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert got[("supervision", "2")] == (2, 1, 1, 0, 0.5, 1, 1, 0, 0.5)
    assert got[("whistle", "department")] == (2, 0, 2, 0, 0.0, 0, 1, 1, 0.0)
