"""The KPI engine against an independent computation written from docs/kpis.md, not from the
engine's code: plain loops over the facts, exact fractions, every rate and every grouping."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.metrics.kpi import (
    RATES,
    CaseFacts,
    KpiPolicy,
    Period,
    compute,
    rank_units,
    red_black_lists,
)
from services.metrics.simulate import lifecycles

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
MONTH = Period.parse("2026-11", TZ)
AS_OF = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)  # some cases still open, some responses not yet due
FACTS = list(lifecycles(MONTH, per_day=40, seed=7, as_of=AS_OF))


# --- the independent computation ----------------------------------------------------------------

def _label(kind: str, t: datetime) -> str:
    local = t.astimezone(TZ)
    if kind == "day":
        return local.strftime("%Y-%m-%d")
    if kind == "month":
        return local.strftime("%Y-%m")
    if kind == "year":
        return local.strftime("%Y")
    iso = local.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def _value(f: CaseFacts, dim: str) -> str:
    return {"unit": f.unit_id, "supervision_level": str(f.supervision_level)}.get(dim) or str(getattr(f, dim))


def _in(t: datetime | None, start: datetime, end: datetime) -> bool:
    return t is not None and start <= t < min(end, AS_OF)


def expected(rate: str, dims: tuple[str, ...], start: datetime, end: datetime, facts: list[CaseFacts] = FACTS,
             k: Fraction = Fraction(1, 2), m: Fraction = Fraction(4, 5)) -> dict[tuple[str, ...], tuple[Fraction, int]]:
    """(numerator, denominator) of one rate for each group, straight from the definitions."""
    num: dict[tuple[str, ...], Fraction] = defaultdict(Fraction)
    den: dict[tuple[str, ...], int] = defaultdict(int)
    for f in facts:
        if rate == "response":
            if f.redo_round != 0 or f.returned or f.sign_off_due is None or f.direct_answer:
                continue
            when = f.sign_off_due if f.first_contact_due is None else max(f.sign_off_due, f.first_contact_due)
            ok = f.signed_off_at is not None and f.signed_off_at <= f.sign_off_due
            if f.first_contact_due is not None:
                ok = ok and f.first_contact_at is not None and f.first_contact_at <= f.first_contact_due
            gain, counted = Fraction(int(ok)), True
        elif rate == "resolution":
            when = f.evaluated_at
            gain = {"resolved": Fraction(1), "partly": k}.get(f.resolution, Fraction(0))
            counted = f.resolution in ("resolved", "partly", "unresolved")
        elif rate == "satisfaction":
            when = f.evaluated_at
            gain = {"satisfied": Fraction(1), "basic": m}.get(f.satisfaction, Fraction(0))
            counted = f.satisfaction in ("satisfied", "basic", "unsatisfied")
        elif rate == "on_time_close":
            when = f.closed_at
            gain = Fraction(int(f.close_due is None or (f.closed_at is not None and f.closed_at <= f.close_due)))
            counted = True
        elif rate == "return":
            if f.redo_round != 0:
                continue
            when, gain, counted = f.assigned_at, Fraction(int(f.returned)), True
        elif rate == "direct_answer":  # 直接答复率: consultations closed, answered from the knowledge base
            if f.ticket_type != "consultation":
                continue
            when, gain, counted = f.closed_at, Fraction(int(f.direct_answer)), True
        else:  # redo
            when, gain, counted = f.replied_at, Fraction(int(f.redone)), True
        if not counted or not _in(when, start, end):
            continue
        assert when is not None
        key = tuple(_label(d, when) if d in ("day", "week", "month", "year") else _value(f, d) for d in dims)
        num[key] += gain
        den[key] += 1
    return {key: (num[key], den[key]) for key in den}


def expected_counts(what: str, dims: tuple[str, ...], start: datetime, end: datetime) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = defaultdict(int)
    for f in FACTS:
        if what == "tickets" and (f.dispatch_round, f.redo_round) == (1, 0) and _in(f.received_at, start, end):
            when = f.received_at
        elif what == "dispatches" and f.redo_round == 0 and _in(f.assigned_at, start, end):
            when = f.assigned_at
        else:
            continue
        assert when is not None
        out[tuple(_label(d, when) if d in ("day", "week", "month", "year") else _value(f, d) for d in dims)] += 1
    return dict(out)


GROUPINGS: list[tuple[str, ...]] = [
    (), ("day",), ("week",), ("month",), ("year",), ("unit",), ("unit_type",), ("street",), ("ticket_type",),
    ("category",), ("list_item",), ("lane",), ("supervision_level",), ("unit_type", "month"), ("lane", "category"),
]


def test_the_generated_month_exercises_every_outcome() -> None:
    table = compute(FACTS, POLICY, TZ, MONTH.start, MONTH.end, as_of=AS_OF)
    for measure, buckets in {"response": ("on_time", "late"), "return": ("returned", "kept"),
                             "redo": ("redone", "accepted"), "on_time_close": ("on_time", "late"),
                             "direct_answer": ("direct", "handled"),
                             "resolution": ("resolved", "partly", "unresolved", "not_reached"),
                             "satisfaction": ("satisfied", "basic", "unsatisfied", "not_evaluated")}.items():
        for bucket in buckets:
            assert table.total.n(measure, bucket) > 0, (measure, bucket)
    assert {f.lane for f in FACTS} == {"normal", "enterprise", "deputy", "tourist"}
    assert {f.supervision_level for f in FACTS} >= {0, 1, 2, 3}
    assert any(f.dispatch_round > 1 for f in FACTS) and any(f.redo_round > 0 for f in FACTS)
    # responses of the last days are not due yet at AS_OF, though some units answered already
    assert any(f.sign_off_due and f.sign_off_due > AS_OF and f.signed_off_at for f in FACTS)


@pytest.mark.parametrize("dims", GROUPINGS, ids=lambda d: "+".join(d) or "total")
@pytest.mark.parametrize("window", ["month", "year-to-date", "week"])
def test_every_rate_and_count_equals_the_independent_computation(dims: tuple[str, ...], window: str) -> None:
    start, end = {"month": (MONTH.start, MONTH.end),
                  "year-to-date": (datetime(2026, 1, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ)),
                  "week": (Period.parse("2026-W47", TZ).start, Period.parse("2026-W47", TZ).end)}[window]
    table = compute(FACTS, POLICY, TZ, start, end, dims, as_of=AS_OF)
    groups = table.groups if dims else {(): table.total}
    for rate in RATES:
        want = expected(rate, dims, start, end)
        got = {key: (figs.rate(rate, POLICY).numerator, figs.rate(rate, POLICY).denominator)
               for key, figs in groups.items() if figs.rate(rate, POLICY).denominator}
        assert got == want, rate
        for key, (n, d) in want.items():
            assert groups[key].rate(rate, POLICY).value == n / d
    for what in ("tickets", "dispatches"):
        want_counts = expected_counts(what, dims, start, end)
        assert {key: figs.n(what) for key, figs in groups.items() if figs.n(what)} == want_counts
        whole = sum(want_counts.values())
        for key, n in want_counts.items():
            if dims:
                assert table.share(key, what) == Fraction(n, whole)


def test_filters_equal_the_independent_computation_on_the_subset() -> None:
    table = compute(FACTS, POLICY, TZ, MONTH.start, MONTH.end, ("category",), as_of=AS_OF,
                    filters={"unit_type": ["street"], "lane": ["normal", "enterprise"]})
    subset = [f for f in FACTS if f.unit_type == "street" and f.lane in ("normal", "enterprise")]
    for rate in RATES:
        want = expected(rate, ("category",), MONTH.start, MONTH.end, subset)
        got = {key: (figs.rate(rate, POLICY).numerator, figs.rate(rate, POLICY).denominator)
               for key, figs in table.groups.items() if figs.rate(rate, POLICY).denominator}
        assert got == want


def test_score_and_ranking_follow_the_weights() -> None:
    ranked = rank_units(FACTS, POLICY, MONTH, as_of=AS_OF)
    assert len(ranked) >= 10
    for unit in ranked:
        rates: dict[str, Any] = {}
        for rate in ("response", "resolution", "satisfaction"):
            n, d = expected(rate, ("unit",), MONTH.start, MONTH.end).get((unit.unit_id,), (Fraction(0), 0))
            rates[rate] = n / d if d else None
        weights = {"response": 30, "resolution": 35, "satisfaction": 35}
        have = {r: w for r, w in weights.items() if rates[r] is not None}
        assert unit.score == 100 * sum(w * rates[r] for r, w in have.items()) / sum(have.values())
        assert unit.dispatches >= POLICY.min_dispatches
    scores = [(u.score, u.unit_id) for u in ranked]
    assert scores == sorted(scores, key=lambda s: (-s[0], s[1]))
    red, black = red_black_lists(ranked, POLICY)
    assert [u.unit_id for u in red] == [u.unit_id for u in ranked[:5]]
    assert [u.unit_id for u in black] == [u.unit_id for u in reversed(ranked[-5:])]


def test_weights_come_from_the_policy() -> None:
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
    facts = [CaseFacts(f"T{i}", evaluated_at=t0, resolution=r, satisfaction=s)
             for i, (r, s) in enumerate([("resolved", "satisfied"), ("resolved", "basic"), ("partly", "basic"),
                                         ("unresolved", "unsatisfied"), ("not_reached", "not_evaluated")])]
    table = compute(facts, POLICY, TZ, MONTH.start, MONTH.end)
    assert table.total.rate("resolution", POLICY).value == Fraction(2 + Fraction(1, 2), 4)
    assert table.total.rate("satisfaction", POLICY).value == Fraction(1 + 2 * Fraction(4, 5), 4)
    other = KpiPolicy.from_dict({"partly_resolved_weight": "0", "basically_satisfied_weight": "1",
                                 "score_weights": {"satisfaction": 1}})
    assert table.total.rate("resolution", other).value == Fraction(2, 4)
    assert table.total.rate("satisfaction", other).value == Fraction(3, 4)
    assert table.total.score(other) == 75
    assert table.total.rate("response", POLICY).value is None  # nothing due: no value, not 0 or 100
    assert table.total.score(POLICY) == 100 * (35 * Fraction(5, 8) + 35 * Fraction(13, 20)) / 70


def test_response_needs_both_limits_and_counts_when_the_later_one_falls_due() -> None:
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
    h = timedelta(hours=1)
    row = CaseFacts("A", assigned_at=t0, sign_off_due=t0 + 24 * h, first_contact_due=t0 + 48 * h)
    facts = [
        replace(row, ticket_id="A", signed_off_at=t0 + h, first_contact_at=t0 + 2 * h),  # on time
        replace(row, ticket_id="B", signed_off_at=t0 + h, first_contact_at=t0 + 50 * h),  # contact late
        replace(row, ticket_id="C", signed_off_at=t0 + 25 * h, first_contact_at=t0 + h),  # sign-off late
        replace(row, ticket_id="D", returned=True),
    ]
    early = compute(facts, POLICY, TZ, MONTH.start, MONTH.end, as_of=t0 + 47 * h).total
    assert early.n("response") == 0  # the first-contact limit has not passed yet
    later = compute(facts, POLICY, TZ, MONTH.start, MONTH.end, as_of=t0 + 49 * h).total
    assert (later.n("response", "on_time"), later.n("response")) == (1, 3)  # D was returned: not counted
    assert later.rate("return", POLICY).value == Fraction(1, 4)


def test_periods_parse_and_shift() -> None:
    week = Period.parse("2026-W47", TZ)
    assert (week.start.date().isoformat(), week.end.date().isoformat()) == ("2026-11-16", "2026-11-23")
    assert week.previous().label == "2026-W46" and week.year_ago().label == "2025-W47"
    assert Period.parse("2026-W53", TZ).year_ago().label == "2025-W52"  # 2025 has 52 ISO weeks
    assert Period.parse("2026-01", TZ).previous().label == "2025-12"
    assert Period.parse("2026-03", TZ).year_ago().label == "2025-03"
    assert Period.parse("2028-02-29", TZ).year_ago().label == "2027-02-28"
    assert Period.parse("2026", TZ).previous().label == "2025"
    assert len(Period.parse("2026-02", TZ).days()) == 28
    with pytest.raises(ValueError):
        Period.parse("2026-13", TZ)
    with pytest.raises(ValueError):
        compute(FACTS, POLICY, TZ, group_by=("caller_phone",))
