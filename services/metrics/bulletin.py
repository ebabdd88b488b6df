"""The enterprise lane's weekly bulletin (涉企诉求一周一通报), from the KPI facts as the projection
holds them (the lane is the ticket's, decided by the policy's lane precedence). Pure.

For an ISO week: the enterprise tickets received in it, each dispatch's state (待签收, 办理中,
已反馈, 已办结, 已退单) with its limits, and the late ones named with their unit: signed off after the
sign-off limit, or replied (or still not replied at ``as_of``) after the reply limit.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.metrics.kpi import CaseFacts, KpiPolicy, Period, compute

STATES = {"pending": "待签收", "handling": "办理中", "replied": "已反馈", "closed": "已办结", "returned": "已退单"}


@dataclass(frozen=True)
class Row:
    ticket_id: str
    dispatch_round: int
    unit_id: str
    unit_name: str
    category: str
    state: str  # key of STATES
    sign_off_due: datetime | None
    reply_due: datetime | None
    late: str  # "" or why: 签收超时 / 办理超时


@dataclass(frozen=True)
class Bulletin:
    week: Period
    as_of: datetime
    tickets: int
    rows: list[Row]
    states: Counter[str]
    on_time_close: float | None
    satisfaction: float | None

    @property
    def late(self) -> list[Row]:
        return [r for r in self.rows if r.late]


def state_of(f: CaseFacts, as_of: datetime) -> str:
    if f.returned:
        return "returned"
    if f.closed_at is not None and f.closed_at <= as_of:
        return "closed"
    if f.replied_at is not None and f.replied_at <= as_of:
        return "replied"
    return "handling" if f.signed_off_at is not None and f.signed_off_at <= as_of else "pending"


def late_of(f: CaseFacts, as_of: datetime) -> str:
    why = []
    if f.sign_off_due is not None and ((f.signed_off_at or as_of) > f.sign_off_due):
        why.append("签收超时")
    if f.reply_due is not None and not f.returned and ((f.replied_at or as_of) > f.reply_due):
        why.append("办理超时")
    return "、".join(why)


def build(facts: Sequence[CaseFacts], policy: KpiPolicy, week: Period, as_of: datetime) -> Bulletin:
    if week.kind != "week":
        raise ValueError(f"the bulletin is weekly, not {week.kind}")
    ours = {f.ticket_id for f in facts if f.lane == "enterprise" and f.received_at is not None
            and week.start <= f.received_at < min(week.end, as_of)}
    latest: dict[tuple[str, int], CaseFacts] = {}  # each dispatch at its latest handling (redo round)
    for f in facts:
        if f.ticket_id in ours and f.assigned_at is not None:
            key = (f.ticket_id, f.dispatch_round)
            if key not in latest or f.redo_round > latest[key].redo_round:
                latest[key] = f
    rows = [Row(f.ticket_id, f.dispatch_round, f.unit_id, f.unit_name, f.category, state_of(f, as_of),
                f.sign_off_due, f.reply_due, late_of(f, as_of)) for _, f in sorted(latest.items())]
    table = compute([f for f in facts if f.ticket_id in ours], policy, week.tz, as_of=as_of)
    rate = {n: table.total.rate(n, policy).value for n in ("on_time_close", "satisfaction")}
    return Bulletin(week, as_of, len(ours), rows, Counter(r.state for r in rows),
                    None if rate["on_time_close"] is None else float(rate["on_time_close"]),
                    None if rate["satisfaction"] is None else float(rate["satisfaction"]))


def render_html(b: Bulletin) -> str:
    e = html.escape
    tz = b.week.tz

    def at(t: datetime | None) -> str:
        return t.astimezone(tz).strftime("%m-%d %H:%M") if t else "—"

    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x * 100:.2f}%"

    states = "，".join(f"{STATES[k]}{n}件" for k, n in sorted(b.states.items()))
    late = "".join(f"<tr><td>{e(r.ticket_id)}</td><td>{e(r.unit_name or r.unit_id)}</td><td>{e(r.category)}</td>"
                   f"<td>{e(STATES[r.state])}</td><td>{e(r.late)}</td></tr>" for r in b.late)
    rows = "".join(f"<tr><td>{e(r.ticket_id)}</td><td>{e(r.unit_name or r.unit_id)}</td><td>{e(STATES[r.state])}</td>"
                   f"<td>{at(r.sign_off_due)}</td><td>{at(r.reply_due)}</td></tr>" for r in b.rows)
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>涉企诉求一周一通报 {e(b.week.label)}</title></head><body>
<h1>涉企诉求一周一通报（{e(b.week.label)}）</h1>
<p>本周受理涉企诉求{b.tickets}件：{e(states) or "无"}。按时办结率{pct(b.on_time_close)}，满意率{pct(b.satisfaction)}。
超时{len(b.late)}件次，点名如下。数据截至{b.as_of.astimezone(tz):%Y-%m-%d %H:%M}。</p>
<h2>超时点名</h2><table><tr><th>工单</th><th>承办单位</th><th>分类</th><th>状态</th><th>超时</th></tr>{late}</table>
<h2>全部涉企工单</h2><table><tr><th>工单</th><th>承办单位</th><th>状态</th><th>签收时限</th><th>办理时限</th></tr>{rows}</table>
</body></html>"""
