"""Circulation of letters and lists (公文流转): the pure part. No I/O.

The office sends a warning letter (预警函), a 督办函, the 屡办不成 list, a deputies' monthly list or a
舆情预警专报 to a unit (the addressee). Sending numbers it in the year's register (登记号, one
sequence a year for every kind) and sets the deadline to answer (回复时限, ``ANSWER_DAYS`` calendar
days by kind unless the office gives its own). The unit acknowledges it (签收) and answers it
(回复: text and attachments by http(s) reference); answering acknowledges too. A letter not
answered by its deadline is overdue (逾期未回复) and shows on the supervision board.

Scope: a unit sees and answers only the letters addressed to it (:func:`visible`); the office and
leaders see all.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hotline import pb
from hotline.auth import Principal
from hotline.commands import Decision, Illegal, Invalid, NotFound
from hotline.policy import Role
from hotline.text import ATTACHMENT_URI, MAX_ATTACHMENT_NAME_CHARS, MAX_ATTACHMENTS, clean_text
from hotline.v1 import case_pb2
from hotline.v1 import circulation_pb2 as cp
from services.supervision.levels.escalation import actor_of, stamp

# kind -> (name, register prefix, days to answer)
KINDS: dict[str, tuple[str, str, int]] = {
    "warning_letter": ("预警函", "区热线预警函", 5),
    "supervision_letter": ("督办函", "区热线督办函", 3),
    "recurring_list": ("屡办不成问题清单", "区热线屡办不成清单", 10),
    "deputy_monthly_list": ("代表每月问题清单", "区热线代表清单", 10),
    "sentiment_report": ("舆情预警专报", "区热线舆情专报", 1),
}
SENT, ACKNOWLEDGED, ANSWERED = cp.LETTER_STATE_SENT, cp.LETTER_STATE_ACKNOWLEDGED, cp.LETTER_STATE_ANSWERED
STATE_NAMES = {SENT: "待签收", ACKNOWLEDGED: "已签收待回复", ANSWERED: "已回复"}
MAX_TEXT, MAX_TITLE, MAX_DAYS = 20_000, 200, 90
_URI = re.compile(ATTACHMENT_URI)


@dataclass(frozen=True)
class Registered:
    """A letter (None before it is sent) and the next free number of the year's register."""

    letter: cp.Letter | None
    year: int
    next_sequence: int

    def to_doc(self) -> dict[str, Any]:
        """As the audit trail keeps it."""
        return {"letter": pb.to_doc(self.letter) if self.letter else None, "year": self.year,
                "next_sequence": self.next_sequence}


def letter_id(kind: str, ref: str, unit_id: str) -> str:
    """The same letter (kind, about, to) is one letter: sending it again is refused."""
    return "LT-" + hashlib.sha256(f"{kind}|{ref}|{unit_id}".encode()).hexdigest()[:16]


def visible(letter: cp.Letter | None, lid: str, who: Principal) -> cp.Letter:
    if letter is None or (who.role == Role.UNIT and who.unit_id != letter.unit_id):
        raise NotFound("letter", lid)
    return letter


def overdue(letter: cp.Letter, now: datetime) -> bool:
    return letter.state != ANSWERED and letter.HasField("answer_due") and pb.dt(letter.answer_due) < now


def _text(value: Any, what: str, limit: int, required: bool = False) -> str:
    text = clean_text(str(value or "")).strip()
    if required and not text:
        raise Invalid(f"{what} is required")
    if len(text) > limit:
        raise Invalid(f"{what} is longer than {limit} characters")
    return text


def send(state: Registered, request: dict[str, Any], actor: Principal, now: datetime, tz: Any,
         known_unit: Any = lambda unit_id: True) -> Decision[Registered]:
    """发函: number the letter in the register and address it to the unit."""
    kind, ref, unit = str(request.get("kind", "")), str(request.get("ref", "")).strip(), str(
        request.get("unit_id", "")).strip()
    if kind not in KINDS:
        raise Invalid(f"kind is one of {', '.join(KINDS)}, not {kind!r}")
    if not ref or not unit:
        raise Invalid("ref (what the letter is about) and unit_id (the addressee) are required")
    if not known_unit(unit):
        raise Invalid(f"unknown unit {unit!r} (the unit directory)")
    if state.letter is not None:
        raise Illegal(f"{KINDS[kind][0]} about {ref} was already sent to {unit} as {state.letter.number}")
    days = request.get("answer_days")
    days = KINDS[kind][2] if days is None else days
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise Invalid(f"answer_days is a whole number of days from 1 to {MAX_DAYS}")
    name, prefix, _ = KINDS[kind]
    sent = now.astimezone(tz)
    letter = cp.Letter(
        letter_id=letter_id(kind, ref, unit), year=state.year, sequence=state.next_sequence,
        number=f"{prefix}〔{state.year}〕{state.next_sequence}号", kind=kind, ref=ref,
        title=_text(request.get("title"), "title", MAX_TITLE) or f"关于{ref}的{name}",
        body=_text(request.get("body"), "body", MAX_TEXT), unit_id=unit, sent_at=stamp(now), sent_by=actor_of(actor),
        answer_due=stamp((sent + timedelta(days=days)).replace(hour=23, minute=59, second=59, microsecond=0)),
        state=SENT)
    return Decision(Registered(letter, state.year, state.next_sequence + 1),
                    events=[cp.LetterSent(letter=letter, occurred_at=stamp(now))], answer=letter,
                    key=letter.letter_id)


def acknowledge(letter: cp.Letter | None, lid: str, actor: Principal, now: datetime) -> Decision[cp.Letter]:
    """签收: the addressee unit confirms it received the letter."""
    letter = _own(letter, lid, actor)
    if letter.state != SENT:
        raise Illegal(f"letter {letter.number} is {STATE_NAMES.get(letter.state, letter.state)}; "
                      "only a letter waiting for acknowledgement (待签收) can be acknowledged")
    out = cp.Letter()
    out.CopyFrom(letter)
    out.state = ACKNOWLEDGED
    out.acknowledged_at.CopyFrom(stamp(now))
    out.acknowledged_by.CopyFrom(actor_of(actor))
    return Decision(out, events=[cp.LetterAcknowledged(letter=out, occurred_at=stamp(now))])


def answer(letter: cp.Letter | None, lid: str, request: dict[str, Any], actor: Principal,
           now: datetime) -> Decision[cp.Letter]:
    """回复: the addressee unit's answer, text and attachments (http(s) references); acknowledges too."""
    letter = _own(letter, lid, actor)
    if letter.state == ANSWERED:
        raise Illegal(f"letter {letter.number} was already answered")
    text = _text(request.get("answer"), "answer", MAX_TEXT, required=True)
    attachments = _attachments(request.get("attachments") or [])
    out = cp.Letter()
    out.CopyFrom(letter)
    if out.state == SENT:
        out.acknowledged_at.CopyFrom(stamp(now))
        out.acknowledged_by.CopyFrom(actor_of(actor))
    out.state, out.answer = ANSWERED, text
    out.answered_at.CopyFrom(stamp(now))
    out.answered_by.CopyFrom(actor_of(actor))
    out.attachments.extend(attachments)
    return Decision(out, events=[cp.LetterAnswered(letter=out, occurred_at=stamp(now))])


def _own(letter: cp.Letter | None, lid: str, actor: Principal) -> cp.Letter:
    letter = visible(letter, lid, actor)
    if actor.role != Role.UNIT:
        raise Illegal("only the addressee unit acknowledges and answers its letters")
    return letter


def _attachments(items: Sequence[Any]) -> list[case_pb2.Attachment]:
    if not isinstance(items, list) or len(items) > MAX_ATTACHMENTS:
        raise Invalid(f"attachments is a list of at most {MAX_ATTACHMENTS}")
    out = []
    for item in items:
        if not isinstance(item, str | dict):
            raise Invalid("an attachment is a reference: a string, or {\"uri\", \"name\"}")
        uri, name = (item, "") if isinstance(item, str) else (str(item.get("uri", "")), str(item.get("name", "")))
        if not _URI.match(uri):
            raise Invalid(f"an attachment is an http(s) reference, not {uri[:60]!r}")
        if len(name) > MAX_ATTACHMENT_NAME_CHARS:
            raise Invalid(f"an attachment's name is at most {MAX_ATTACHMENT_NAME_CHARS} characters")
        out.append(case_pb2.Attachment(uri=uri, name=name or uri.rsplit("/", 1)[-1]))
    return out


def document(letter: cp.Letter, tz: Any, content: str = "") -> str:
    """The letter as an HTML document: its head (number, addressee, deadline), ``content`` (e.g. the
    warning letter's text) or its body, and the unit's answer once given."""
    e = html.escape

    def at(ts: Any) -> str:
        return pb.dt(ts).astimezone(tz).strftime("%Y年%m月%d日 %H:%M") if ts.seconds else "—"

    attachments = "".join(f'<li><a href="{e(a.uri)}" rel="noopener">{e(a.name or a.uri)}</a></li>'
                          for a in letter.attachments)
    answered = (f"<h2>承办单位回复（{e(at(letter.answered_at))}）</h2><p>{e(letter.answer)}</p>"
                f"<ul>{attachments}</ul>") if letter.state == ANSWERED else ""
    body = content or f"<p>{e(letter.body)}</p>"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{e(letter.number)}</title></head><body>
<h1>{e(KINDS.get(letter.kind, (letter.kind,))[0])}</h1>
<p>登记号：{e(letter.number)}　发往：{e(letter.unit_id)}　发出：{e(at(letter.sent_at))}　\
回复时限：{e(at(letter.answer_due))}</p>
<p>状态：{e(STATE_NAMES.get(letter.state, ""))}</p>
<h2>{e(letter.title)}</h2>
{body}
{answered}
</body></html>"""


def sentiment_report(warning: Any, letters: Sequence[cp.Letter], tz: Any) -> str:
    """舆情预警专报: a keyword (舆情) warning, its tickets and where its letters stand."""
    e = html.escape
    raised = pb.dt(warning.raised_at).astimezone(tz).strftime("%Y年%m月%d日 %H:%M")
    rows = "".join(f"<tr><td>{e(x.number)}</td><td>{e(KINDS.get(x.kind, (x.kind,))[0])}</td><td>{e(x.unit_id)}</td>"
                   f"<td>{e(STATE_NAMES.get(x.state, ''))}</td></tr>" for x in letters)
    tickets = "".join(f"<li>{e(t)}</li>" for t in warning.ticket_ids)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>舆情预警专报 {e(warning.warning_id)}</title></head><body>
<h1>区12345热线办 舆情预警专报</h1>
<p>预警编号：{e(warning.warning_id)}　等级：{e(warning.level)}　时间：{e(raised)}</p>
<p>街道：{e(warning.street or "—")}　诉求类别：{e(warning.category or "—")}</p>
<h2>舆情情况</h2><p>{e(warning.explanation)}</p>
<h2>涉及工单（{len(warning.ticket_ids)}件）</h2><ol>{tickets}</ol>
<h2>函件流转</h2><table><tr><th>登记号</th><th>类型</th><th>发往</th><th>状态</th></tr>{rows}</table>
<p>请领导阅示。</p>
</body></html>"""
