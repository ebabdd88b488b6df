"""The SLA and supervision alert rules (deploy/prometheus/alerts.yml, group hotline-sla) fire on
synthetic series and stay quiet otherwise (``promtool test rules``); the SLA figures behind the
gauges are counted right (services/supervision/cases/sla_metrics.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.supervision.cases import sla_metrics
from services.supervision.cases.sla_metrics import figures
from tests.unit.test_deploy_files import ALERTS_YML, NO_PROMTOOL, PROMTOOL, _promtool, _target

SUP = _target("supervision")
# one sample per minute for 90 minutes
SERIES = [
    # 3 overdue 物业管理 cases at streets all along; districts' overdue appear at minute 50 (a jump of 30)
    (f'hotline_cases_overdue{{{SUP}, unit_type="street", category="物业管理"}}', "3x90"),
    (f'hotline_cases_overdue{{{SUP}, unit_type="district_department", category="市容环卫"}}', "0x49 30x40"),
    (f'hotline_cases_due_within_24h{{{SUP}, unit_type="street", category="物业管理"}}', "250x90"),
    (f'hotline_cases_due_within_24h{{{SUP}, unit_type="district_department", category="市容环卫"}}', "10x90"),
    (f'hotline_case_backlog{{{SUP}, age="ge_30d"}}', "0x90"),
    (f'hotline_case_backlog{{{SUP}, age="lt_1d"}}', "500x90"),
    (f"hotline_calendar_known_days_ahead{{{SUP}}}", "35x90"),
    # after downtime the scan fires its backlog 2 hours late, from minute 40 on
    (f"hotline_timer_lateness_seconds{{{SUP}}}", "0x39 7200x50"),
    (f'hotline_timers_fired_total{{{SUP}, kind="reply", stage="due"}}', "0x39 0+5x50"),
    # an evaluation waits for its case from minute 10 on, passes 3 days at minute 40: alerted from minute 70
    (f"hotline_evaluation_wait_oldest_seconds{{{SUP}}}", "0x9 257400+60x80"),
]


def firing(at: str, alerts: dict[str, int]) -> dict[str, object]:
    return {"expr": 'count by (alertname) (ALERTS{alertstate="firing", alertname=~"Hotline(Cases|Overdue|ManyCases|'
                    'Backlog|Calendar|Timers|Evaluations).*"})',
            "eval_time": at, "exp_samples": [{"labels": f'{{alertname="{a}"}}', "value": n} for a, n in alerts.items()]}


TESTS = {
    "rule_files": [str(ALERTS_YML)],
    "evaluation_interval": "1m",
    "tests": [{
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in SERIES],
        "promql_expr_test": [
            # at 25 min only the calendar's alert (for 10 min) has lasted long enough
            firing("25m", {"HotlineCalendarRunsOut": 1}),
            # at 60 min: streets overdue for 30 min+, the due-soon wave at streets only, timers late since 40 (+10)
            firing("60m", {"HotlineCalendarRunsOut": 1, "HotlineCasesOverdue": 1, "HotlineManyCasesDueSoon": 1,
                           "HotlineTimersLate": 1}),
            # the districts' jump at minute 50 compares with an hour before from minute 60 on; 15 minutes later
            firing("78m", {"HotlineCalendarRunsOut": 1, "HotlineCasesOverdue": 1, "HotlineManyCasesDueSoon": 1,
                           "HotlineTimersLate": 1, "HotlineOverdueRising": 1, "HotlineEvaluationsWaiting": 1}),
        ],
        "alert_rule_test": [
            {"eval_time": "60m", "alertname": "HotlineCasesOverdue", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "unit_type": "street", "category": "物业管理"},
                "exp_annotations": {
                    "summary": "3 物业管理 cases of street units are overdue",
                    "description": "Open cases past their sign-off or reply deadline for 30 minutes; they are under "
                                   "system supervision (level 1).",
                }}]},
            {"eval_time": "60m", "alertname": "HotlineBacklogOlderThan30Days", "exp_alerts": []},
        ],
    }],
}


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_sla_alert_rules_fire_with_promtool(tmp_path: Path) -> None:
    path = tmp_path / "sla-alerts-test.yml"
    path.write_text(json.dumps(TESTS, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    out = _promtool("test", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


NOW = datetime(2026, 11, 26, 8, tzinfo=UTC)


def doc(category: str, due_in: timedelta | None, age: timedelta, level: int = 0, unit: str = "UNIT_TYPE_STREET",
        ) -> dict[str, object]:
    return {"primary_unit": {"unit_type": unit}, "category": category, "received_at": NOW - age,
            "next_deadline": None if due_in is None else NOW + due_in, "supervision_level": level}


def test_sla_figures_count_overdue_due_soon_backlog_and_levels() -> None:
    cases = [
        doc("物业管理", -timedelta(hours=1), timedelta(days=6), level=1),
        doc("物业管理", timedelta(0), timedelta(hours=3)),  # due right now: overdue
        doc("物业管理", timedelta(hours=5), timedelta(days=2)),
        doc("市容环卫", timedelta(hours=24), timedelta(days=40), unit="UNIT_TYPE_DISTRICT_DEPARTMENT", level=2),
        doc("市容环卫", timedelta(hours=25), timedelta(days=10)),  # beyond 24 h
        doc("市容环卫", None, timedelta(days=20)),  # parked: no deadline, still in the backlog
    ]
    f = figures(cases, NOW)
    assert dict(f.overdue) == {("street", "物业管理"): 2}
    assert dict(f.due_soon) == {("street", "物业管理"): 1, ("district_department", "市容环卫"): 1}
    assert f.backlog == {"lt_1d": 1, "1d_3d": 1, "3d_7d": 1, "7d_15d": 1, "15d_30d": 1, "ge_30d": 1}
    assert f.supervised == {"1": 1, "2": 1, "3": 0, "4": 0}


def test_categories_beyond_the_bound_are_counted_as_other() -> None:
    many = [doc(f"类别{i:03d}", -timedelta(hours=1), timedelta(days=1)) for i in range(sla_metrics.MAX_CATEGORIES)] * 2
    late = -timedelta(hours=1)
    many += [doc("类别000", late, timedelta(days=1)), doc("稀有", late, timedelta(days=1))]
    f = figures(many, NOW)
    categories = {c for _, c in f.overdue}
    assert len(categories) == sla_metrics.MAX_CATEGORIES + 1 and "other" in categories and "稀有" not in categories
    assert f.overdue[("street", "类别000")] == 3
    # equal counts at the bound: kept by name, whatever order the cases come in (the incremental
    # ledger, gauge_ledger.py, must give the same figures as this recount; issue 21)
    tied = [doc(f"类别{i:03d}", late, timedelta(days=1)) for i in range(sla_metrics.MAX_CATEGORIES)]
    tied.insert(0, doc("稀有", late, timedelta(days=1)))
    assert {c for _, c in figures(tied, NOW).overdue} == {c for _, c in figures(tied[::-1], NOW).overdue}


def test_evaluations_waiting_for_their_case_are_counted_with_the_oldest_age() -> None:
    assert (figures([], NOW).waiting, figures([], NOW).waiting_oldest_seconds) == (0, 0.0)
    f = figures([], NOW, waiting_since=[NOW - timedelta(hours=2), NOW - timedelta(days=4), NOW])
    assert f.waiting == 3 and f.waiting_oldest_seconds == 4 * 86400
