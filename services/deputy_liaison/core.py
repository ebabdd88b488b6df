"""Deputy liaison's pure logic (no I/O): the registry of deputies (人大代表) and liaison officers
(人大联络), a deputy's problem (代表反映的群众诉求) becoming a ticket, the deputy's rating and
escalation (督办) of the outcome, notifications of each step, monthly problem lists (每月问题清单)
and the figures of deputy work."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from hotline import pb
from hotline.commands import Decision, Exists, Illegal, Invalid
from hotline.kpi_rates import Figures, KpiPolicy  # one definition of the rates (docs/kpis.md), the kit's
from hotline.mongo import Doc
from hotline.v1 import case_pb2, deputy_pb2, events_pb2, services_pb2, ticket_pb2

TICKET_PREFIX = "RD-"  # ticket ids of deputy submissions (intake uses the same prefix)
LEVELS = {"national": "全国人大代表", "provincial": "省人大代表", "municipal": "市人大代表", "district": "区人大代表"}
LEVEL_ALIASES = {"全国": "national", "省": "provincial", "市": "municipal", "区": "district",
                 **{v: k for k, v in LEVELS.items()}}
RATINGS = ("满意", "基本满意", "不满意")
CLOSED = {"closed"}
REPLIED = {"replied", "review_passed", "evaluated", "closed", "redo", "redo_decided", "sent_back", "supervised"}

# ---------------------------------------------------------------- registry


def level_of(value: str) -> str:
    """The level code of ``value`` (code or Chinese name); raises Invalid otherwise."""
    value = value.strip()
    code = value if value in LEVELS else LEVEL_ALIASES.get(value)
    if code is None:
        raise Invalid(f"代表层级“{value}”无效，应为：全国、省、市、区（national/provincial/municipal/district）")
    return code


def register(existing: Doc | None, deputy: Doc) -> Decision[Doc]:
    if existing is not None:
        raise Exists(f"代表编号 {deputy['deputy_id']} 已登记")
    return Decision(state=deputy, answer={"deputy_id": deputy["deputy_id"], "message": "登记成功"})


def register_officer(existing: Doc | None, officer: Doc) -> Decision[Doc]:
    if existing is not None:
        raise Exists(f"联络员编号 {officer['officer_id']} 已登记")
    return Decision(state=officer, answer={"officer_id": officer["officer_id"], "message": "登记成功"})


def imported(existing: Doc | None, batch: Doc) -> Decision[Doc]:
    """An import (one command, audited with its rows) of deputies already validated."""
    if existing is not None:
        raise Exists(f"导入批次 {batch['import_id']} 已存在")
    return Decision(state=batch, answer={"import_id": batch["import_id"], "imported": len(batch["deputies"]),
                                         "message": f"成功导入 {len(batch['deputies'])} 名代表"})


IMPORT_COLUMNS = {"代表编号": "deputy_id", "姓名": "name", "层级": "level", "街道": "street", "社区": "community",
                  "联系方式类型": "contact_channel", "联系方式": "contact", "代表联系点": "liaison_point",
                  "联络员编号": "liaison_officer_id"}


def rows_of_csv(data: bytes) -> list[dict[str, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("CSV 文件须为 UTF-8 编码") from exc
    from hotline.settings import HttpLimitSettings

    most = HttpLimitSettings().max_import_rows
    rows = [_columns(row) for _, row in zip(range(most + 1), csv.DictReader(io.StringIO(text)), strict=False)]
    if len(rows) > most:
        raise Invalid(f"CSV 文件过大：每次至多导入 {most} 行")
    return rows


def rows_of_xlsx(data: bytes) -> list[dict[str, str]]:
    from hotline.security import SpreadsheetTooLarge, bounded_rows  # only needed for imports

    try:
        table = bounded_rows(data)  # issue #19: bounded in rows and uncompressed size
    except SpreadsheetTooLarge as exc:
        raise Invalid(f"XLSX 文件过大：{exc}") from exc
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise Invalid("无法读取 XLSX 文件，请使用导入模板") from exc
    rows = [["" if c is None else str(c) for c in row] for row in table]
    if not rows:
        return []
    head = rows[0]
    return [_columns(dict(zip(head, row, strict=False))) for row in rows[1:] if any(c.strip() for c in row)]


def _columns(row: Mapping[str | None, Any]) -> dict[str, str]:
    """A row with English keys (Chinese headers of the template or the field names)."""
    return {IMPORT_COLUMNS.get(str(k).strip(), str(k).strip()): str(v or "").strip() for k, v in row.items() if k}


# ---------------------------------------------------------------- submissions


def submit(submission_id: str, fields: dict[str, Any], ticket_type: ticket_pb2.TicketType.ValueType,
           at: datetime) -> Decision[Doc]:
    ticket_id = ticket_id_of(submission_id)
    citizen = fields.pop("citizen", None) or {}
    consent = bool(citizen.get("consent"))
    contact = {"name": citizen.get("name", ""), "phone": citizen.get("phone", "")} if consent else {}
    event = submission_event(submission_id, fields, ticket_type, at, contact)
    doc = {"submission_id": submission_id, "ticket_id": ticket_id, "status": "submitted",
           "status_text": "已提交，待热线受理", "submitted_at": at, "citizen_consent": consent,
           "citizen": contact, "timeline": [], **fields}
    return Decision(state=doc, events=[event], key=ticket_id,
                    answer=services_pb2.SubmitProblemResponse(submission_id=submission_id, ticket_id=ticket_id))


def submission_event(submission_id: str, fields: Mapping[str, Any], ticket_type: ticket_pb2.TicketType.ValueType,
                     at: datetime, contact: Mapping[str, str]) -> events_pb2.DeputySubmission:
    """The ticket a submission becomes: source "deputy" (intake), lane 人大代表 (the tag the
    SLA policy of supervision reads: reply_working_days_deputy)."""
    caller = ticket_pb2.Caller(name=contact.get("name", ""), phone=contact.get("phone", ""),
                               anonymous=not contact)
    attachments = [case_pb2.Attachment(uri=a["uri"], name=a.get("name", ""), content_type=a.get("content_type", ""))
                   for a in fields.get("attachments") or []]
    return events_pb2.DeputySubmission(
        submission_id=submission_id,
        deputy_id=fields["deputy_id"],
        attachments=attachments,
        ticket=ticket_pb2.CityTicket(
            city_ticket_id=f"{TICKET_PREFIX}{submission_id}",
            ticket_type=ticket_type or ticket_pb2.TICKET_TYPE_HELP,
            title=fields["title"], content=fields["content"], address=fields.get("address", ""),
            street=fields.get("street_name", ""), caller=caller,
            received_at=pb.ts(at), dispatched_at=pb.ts(at), urgency=ticket_pb2.URGENCY_NORMAL,
            tags=["人大代表"], channel="deputy"))


def ticket_id_of(submission_id: str) -> str:
    return f"{TICKET_PREFIX}{submission_id}"


def submission_id_of(ticket_id: str) -> str | None:
    return ticket_id[len(TICKET_PREFIX):] if ticket_id.startswith(TICKET_PREFIX) else None


def rate(submission: Doc | None, rating: str, comment: str, at: datetime, resolution: str = "") -> Decision[Doc]:
    """The deputy rates the outcome once the unit has replied (满意/基本满意/不满意). The rating is
    the case's evaluation (回访): supervision applies DeputyRated as it does a city evaluation, so
    a satisfied or basically satisfied rating closes the case (services/supervision/cases/deputy_closure.py)."""
    if submission is None:
        raise Invalid("问题不存在")
    if submission.get("status") not in REPLIED:
        raise Illegal("承办单位尚未答复，暂不能评价")
    entry = {"rating": rating, "comment": comment, "at": at, **({"resolution": resolution} if resolution else {})}
    event = deputy_pb2.DeputyRated(submission_id=submission["submission_id"], ticket_id=submission["ticket_id"],
                                   deputy_id=submission["deputy_id"], rating=rating, comment=comment,
                                   occurred_at=pb.ts(at), resolution=resolution)
    state = {**submission, "rating": entry, "ratings": [*submission.get("ratings", []), entry]}
    return Decision(state=state, events=[event], key=submission["ticket_id"],
                    answer={"submission_id": submission["submission_id"], "rating": rating, "message": "评价已记录"})


def escalate(submission: Doc | None, reason: str, at: datetime) -> Decision[Doc]:
    """An unsatisfying outcome (rated 不满意) goes to supervision (督办), once."""
    if submission is None:
        raise Invalid("问题不存在")
    rating = submission.get("rating") or {}
    if rating.get("rating") != "不满意":
        raise Illegal("只有评价为“不满意”的办理结果可以提请督办")
    if submission.get("escalated_at"):
        raise Illegal("该问题已提请督办")
    event = deputy_pb2.DeputyEscalated(submission_id=submission["submission_id"], ticket_id=submission["ticket_id"],
                                       deputy_id=submission["deputy_id"], rating=rating["rating"],
                                       comment=reason or rating.get("comment", ""), occurred_at=pb.ts(at))
    state = {**submission, "escalated_at": at, "escalation_reason": reason}
    return Decision(state=state, events=[event], key=submission["ticket_id"],
                    answer={"submission_id": submission["submission_id"], "message": "已提请热线办督办"})


def notification(deputy: Mapping[str, Any], submission_id: str, ticket_id: str, step: str, text: str,
                 at: datetime, event_key: str) -> deputy_pb2.DeputyNotified:
    return deputy_pb2.DeputyNotified(
        notification_id=event_key, deputy_id=str(deputy.get("deputy_id", "")),
        channel=str(deputy.get("contact_channel") or "sms"), contact=str(deputy.get("contact", "")),
        submission_id=submission_id, ticket_id=ticket_id, step=step,
        text=f"【12345人大代表联络】您转交的问题（{ticket_id}）：{text}", occurred_at=pb.ts(at))


# ---------------------------------------------------------------- monthly lists


HARD_FLAGS = ("overdue", "redone", "unsatisfied")  # what ticket facts can make a problem hard (疑难)
POLICY_FILE = Path(__file__).parent / "data" / "monthly_list_policy.json"


@dataclass(frozen=True)
class ListPolicy:
    """The thresholds of monthly lists, from the versioned policy file
    (data/monthly_list_policy.json, path in settings.deputy.monthly_list_policy)."""

    version: str
    concentrated_at: int = 5  # tickets of one category in one community
    repeated_at: int = 3  # tickets about one place in one community and category
    hard_at: int = 1  # tickets of one community and category with a hard flag
    hard_when: frozenset[str] = frozenset(HARD_FLAGS)

    @classmethod
    def load(cls, path: Path | None = None) -> ListPolicy:
        """The policy file (None: the service's own, :data:`POLICY_FILE`; settings.deputy.monthly_list_policy)."""
        return cls.from_dict(json.loads((path or POLICY_FILE).read_text("utf-8")))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ListPolicy:
        hard = d.get("hard", {})
        policy = cls(version=str(d.get("version", "")),
                     concentrated_at=int(d.get("concentrated", {}).get("min_tickets", 5)),
                     repeated_at=int(d.get("repeated", {}).get("min_tickets_same_place", 3)),
                     hard_at=int(hard.get("min_tickets", 1)),
                     hard_when=frozenset(hard.get("when", HARD_FLAGS)))
        if not policy.version:
            raise ValueError("the monthly list policy needs a version")
        if min(policy.concentrated_at, policy.repeated_at, policy.hard_at) < 1:
            raise ValueError("monthly list thresholds must be at least 1")
        if unknown := policy.hard_when - set(HARD_FLAGS):
            raise ValueError(f"unknown hard flags {sorted(unknown)}; known: {', '.join(HARD_FLAGS)}")
        return policy


def monthly_items(tickets: Iterable[Mapping[str, Any]], month: str, policy: ListPolicy) -> list[Doc]:
    """The problems of one month (每月问题清单) by area, from ticket facts
    (ticket_id, received_at, street, community, category, address, overdue, redone, unsatisfied),
    with the thresholds of ``policy``:

    * concentrated (集中): a category with at least ``concentrated_at`` tickets in one community;
    * repeated (反复投诉): a place complained about at least ``repeated_at`` times in one
      community and category;
    * hard (疑难): at least ``hard_at`` tickets of one community and category that were
      overdue, redone or evaluated unsatisfied (the flags in ``hard_when``).
    """
    of_month = [t for t in tickets if str(t.get("received_month", "")) == month and t.get("street")]
    items: list[Doc] = []
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for t in of_month:
        groups[(t["street"], t.get("community") or "", t.get("category") or "其他")].append(t)
    for (street, community, category), group in sorted(groups.items()):
        if len(group) >= policy.concentrated_at:
            items.append(_item("concentrated", street, community, category, group,
                               f"{category}类问题本月集中反映 {len(group)} 件"))
        places = Counter(t.get("address") or "" for t in group if t.get("address"))
        for place, n in sorted(places.items()):
            if n >= policy.repeated_at:
                same = [t for t in group if t.get("address") == place]
                items.append(_item("repeated", street, community, category, same,
                                   f"“{place}”{category}问题本月被反复投诉 {n} 次"))
        hard = [t for t in group if any(t.get(flag) for flag in policy.hard_when)]
        if hard and len(hard) >= policy.hard_at:
            items.append(_item("hard", street, community, category, hard,
                               f"{category}类疑难问题 {len(hard)} 件（超期、重办或群众不满意）"))
    return items


def _item(kind: str, street: str, community: str, category: str, group: Sequence[Mapping[str, Any]],
          summary: str) -> Doc:
    ids = sorted(str(t["ticket_id"]) for t in group)
    key = f"{kind}/{street}/{community}/{category}/{summary}"
    return {"item_id": hashlib.sha1(key.encode()).hexdigest()[:12], "kind": kind, "street": street,
            "community": community, "category": category, "tickets": len(ids), "summary": summary,
            "ticket_ids": ids}


def items_for(deputy: Mapping[str, Any], items: Iterable[Doc]) -> list[Doc]:
    """The items of a deputy's constituency: their community, or their whole street when the
    deputy has none (higher-level deputies with a street constituency)."""
    street, community = deputy.get("street", ""), deputy.get("community", "")
    return [i for i in items if i["street"] == street and (not community or i["community"] == community)]


def list_event(list_doc: Mapping[str, Any], at: datetime) -> deputy_pb2.MonthlyListPublished:
    return deputy_pb2.MonthlyListPublished(
        list_id=list_doc["list_id"], month=list_doc["month"], deputy_id=list_doc["deputy_id"],
        items=[deputy_pb2.MonthlyListItem(**{k: v for k, v in i.items() if k in _ITEM_FIELDS})
               for i in list_doc["items"]],
        published_at=pb.ts(at), policy_version=str(list_doc.get("policy_version", "")))


_ITEM_FIELDS = {f.name for f in deputy_pb2.MonthlyListItem.DESCRIPTOR.fields}


# ---------------------------------------------------------------- figures


def on_time(case: Mapping[str, Any]) -> bool:
    """Replied (办结反馈) by the reply deadline of the deputy lane (case view as JSON)."""
    replied, due = case.get("replied_at"), case.get("reply_due")
    if not replied or not due:
        return False
    return datetime.fromisoformat(str(replied)) <= datetime.fromisoformat(str(due))


def closed(submission: Mapping[str, Any]) -> bool:
    """Closed (办结): the last step was the close, or a later step (a deputy's escalation) on a
    case that stays archived."""
    case = submission.get("case") or {}
    return submission.get("status") in CLOSED or case.get("state") == "CASE_STATE_ARCHIVED"


SATISFACTION_BUCKETS = {"满意": "satisfied", "基本满意": "basic", "不满意": "unsatisfied",
                        "SATISFACTION_SATISFIED": "satisfied", "SATISFACTION_BASICALLY_SATISFIED": "basic",
                        "SATISFACTION_UNSATISFIED": "unsatisfied"}


def rating_of(submission: Mapping[str, Any]) -> str:
    """The evaluation of a deputy's problem, as a KPI satisfaction bucket (satisfied, basic,
    unsatisfied) or "": the deputy's own rating, else the case's evaluation (the office's callback
    when the deputy did not rate)."""
    rating = (submission.get("rating") or {}).get("rating")
    if rating:
        return SATISFACTION_BUCKETS.get(str(rating), "")
    evaluation = (submission.get("case") or {}).get("evaluation") or {}
    return SATISFACTION_BUCKETS.get(str(evaluation.get("satisfaction", "")), "")


def figures(submissions: Iterable[Mapping[str, Any]], deputies: Mapping[str, Mapping[str, Any]],
            policy: KpiPolicy | None = None) -> list[Doc]:
    """Deputy work by level and street: submissions, closed, closed on time, on-time rate,
    rated, satisfied (满意 or 基本满意), satisfaction rate. The satisfaction rate is the KPI
    engine's (hotline/kpi_rates.py, docs/kpis.md): (满意 + m x 基本满意) / rated, with the
    weight m of the KPI policy (0.8), not 1."""
    policy = policy or KpiPolicy.load()
    rows: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    kpi: dict[tuple[str, str], Figures] = defaultdict(Figures)
    for s in submissions:
        deputy = deputies.get(str(s.get("deputy_id")), {})
        key = (str(deputy.get("level") or "unknown"), str(deputy.get("street") or "unknown"))
        c = rows[key]
        c["submissions"] += 1
        if closed(s):
            c["closed"] += 1
            c["closed_on_time"] += on_time(s.get("case") or {})
        bucket = rating_of(s)
        if bucket:
            c["rated"] += 1
            c["satisfied"] += bucket in ("satisfied", "basic")
            kpi[key].add("satisfaction", bucket)
        c["escalated"] += bool(s.get("escalated_at"))
    out = []
    for (level, street), c in sorted(rows.items()):
        out.append({"level": level, "street": street, **{k: c[k] for k in (
            "submissions", "closed", "closed_on_time", "rated", "satisfied", "escalated")},
            "on_time_rate": round(c["closed_on_time"] / c["closed"], 4) if c["closed"] else None,
            "satisfaction_rate": _rate(kpi[(level, street)].rate("satisfaction", policy).value)})
    return out


def _rate(value: Fraction | None) -> float | None:
    return round(float(value), 4) if value is not None else None
