"""Records of talks with units (定期约谈): the pure part. No I/O.

The red and black list (红黑榜) calls for regular talks with the units at the bottom: the office
records who was talked to (the unit, the people present), when, why (the ranking that led to it:
period, list, rank and score as the report showed them, and the reason), the outcome, and the
follow-up with its date; later it records the follow-up done. A unit reads its own records.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from typing import Any

from hotline.auth import Principal
from hotline.commands import Decision, Illegal, Invalid, NotFound
from hotline.policy import Role
from hotline.text import clean_text

PERIOD = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])|-W\d{2}|-H[12])?$")  # the report's period: 2026-11, 2026-W47, 2026-H1
LISTS = {"black": "黑榜", "red": "红榜", "": "—"}
MAX_TEXT, MAX_PEOPLE = 5000, 30


def talk_id(unit_id: str, held_at: str) -> str:
    return "TK-" + hashlib.sha256(f"{unit_id}|{held_at}".encode()).hexdigest()[:16]


def _text(value: Any, what: str, required: bool = False) -> str:
    text = clean_text(str(value or "")).strip()
    if required and not text:
        raise Invalid(f"{what} is required")
    if len(text) > MAX_TEXT:
        raise Invalid(f"{what} is longer than {MAX_TEXT} characters")
    return text


def visible(talk: dict[str, Any] | None, tid: str, who: Principal) -> dict[str, Any]:
    if talk is None or (who.role == Role.UNIT and who.unit_id != talk["unit_id"]):
        raise NotFound("talk", tid)
    return talk


def record(existing: dict[str, Any] | None, r: dict[str, Any], actor: Principal, now: datetime,
           known_unit: Any = lambda unit_id: True) -> Decision[dict[str, Any]]:
    """约谈记录: who, when, why (the ranking), outcome, follow-up."""
    unit = str(r.get("unit_id", "")).strip()
    if not unit or not known_unit(unit):
        raise Invalid(f"unit_id must be a unit of the directory, not {unit!r}")
    try:
        held = datetime.fromisoformat(str(r.get("held_at", "")))
    except ValueError as exc:
        raise Invalid("held_at is an ISO date and time, e.g. 2026-12-03T15:00:00+08:00") from exc
    if held.tzinfo is None:
        raise Invalid("held_at needs its time zone offset")
    period, listed = str(r.get("ranking_period", "")).strip(), str(r.get("ranking_list", "")).strip()
    if period and not PERIOD.match(period):
        raise Invalid(f"ranking_period is a report's period (2026, 2026-H1, 2026-11, 2026-W47), not {period!r}")
    if listed not in LISTS:
        raise Invalid("ranking_list is black, red or empty")
    rank = r.get("rank")
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
        raise Invalid("rank is a positive whole number")
    score = r.get("score")
    if score is not None and not isinstance(score, int | float):
        raise Invalid("score is a number")
    people = r.get("attendees") or []
    if not isinstance(people, list) or len(people) > MAX_PEOPLE:
        raise Invalid(f"attendees is a list of at most {MAX_PEOPLE} names")
    due = str(r.get("follow_up_due", "")).strip()
    if due:
        try:
            date.fromisoformat(due)
        except ValueError as exc:
            raise Invalid("follow_up_due is a date YYYY-MM-DD") from exc
    tid = talk_id(unit, held.isoformat())
    if existing is not None:
        raise Illegal(f"the talk with {unit} at {held.isoformat()} is recorded already ({tid})")
    talk = {"talk_id": tid, "unit_id": unit, "held_at": held, "reason": _text(r.get("reason"), "reason", True),
            "ranking_period": period, "ranking_list": listed, "rank": rank, "score": score,
            "attendees": [_text(p, "an attendee", True) for p in people],
            "outcome": _text(r.get("outcome"), "outcome", True), "follow_up": _text(r.get("follow_up"), "follow_up"),
            "follow_up_due": due, "follow_up_done": "", "follow_up_done_at": None,
            "recorded_by": actor.subject, "recorded_at": now}
    return Decision(talk, answer=shown(talk))


def follow_up(talk: dict[str, Any] | None, tid: str, r: dict[str, Any], actor: Principal,
              now: datetime) -> Decision[dict[str, Any]]:
    """整改跟踪: the office records what the unit did after the talk."""
    talk = visible(talk, tid, actor)
    if talk.get("follow_up_done_at") is not None:
        raise Illegal(f"the follow-up of talk {tid} is recorded already")
    out = {**talk, "follow_up_done": _text(r.get("note"), "note", True), "follow_up_done_at": now,
           "follow_up_by": actor.subject}
    return Decision(out, answer=shown(out))


def shown(talk: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready (times as ISO strings)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in talk.items() if k != "_id"} | {
        "ranking_list_name": LISTS.get(talk.get("ranking_list", ""), "")}
