"""The enterprise weekly bulletin (涉企诉求一周一通报) of a simulated week: its tickets, states and late
ones equal a computation from the facts, the late ones are named, and only weeks are accepted."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hotline.clock import ManualClock
from hotline.commands import DomainError
from services.metrics import bulletin
from services.metrics.kpi import CaseFacts, KpiPolicy, Period
from services.metrics.simulate import lifecycles
from services.metrics.views import Views

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
WEEK = Period.parse("2026-W47", TZ)
AS_OF = datetime(2026, 11, 25, 12, 0, tzinfo=TZ)  # Wednesday after the week: some still open, some late
FACTS = list(lifecycles(WEEK, per_day=200, seed=8, as_of=AS_OF, lead_days=0))


def test_the_weeks_enterprise_tickets_states_and_late_ones() -> None:
    b = bulletin.build(FACTS, POLICY, WEEK, AS_OF)
    ours = {f.ticket_id for f in FACTS if f.lane == "enterprise" and WEEK.start <= f.received_at < WEEK.end}  # type: ignore[operator]
    assert b.tickets == len(ours) > 10
    dispatches = {(f.ticket_id, f.dispatch_round) for f in FACTS if f.ticket_id in ours}
    assert sorted((r.ticket_id, r.dispatch_round) for r in b.rows) == sorted(dispatches)
    late_reply = {(f.ticket_id, f.dispatch_round) for f in FACTS if f.ticket_id in ours and not f.returned
                  and f.reply_due and (f.replied_at or AS_OF) > f.reply_due
                  and f.redo_round == max(g.redo_round for g in FACTS
                                          if (g.ticket_id, g.dispatch_round) == (f.ticket_id, f.dispatch_round))}
    assert {(r.ticket_id, r.dispatch_round) for r in b.rows if "办理超时" in r.late} == late_reply
    assert sum(b.states.values()) == len(b.rows) and {"closed", "handling"} <= set(b.states)
    page = bulletin.render_html(b)
    assert "涉企诉求一周一通报（2026-W47）" in page and f"本周受理涉企诉求{b.tickets}件" in page
    for r in b.late:
        assert r.ticket_id in page[page.index("超时点名"):page.index("全部涉企工单")]


class FactsOnly:
    async def facts(self, policy: KpiPolicy) -> list[CaseFacts]:
        return FACTS


async def test_the_bulletin_is_served_for_a_week_only() -> None:
    views = Views(FactsOnly(), POLICY, TZ, ManualClock(AS_OF))  # type: ignore[arg-type]
    assert "涉企诉求一周一通报（2026-W47）" in await views.enterprise_bulletin("2026-W47")
    with pytest.raises(DomainError) as err:
        await views.enterprise_bulletin("2026-11")
    assert err.value.code == "invalid_argument"
