"""Early warnings (预警): pure detectors over a stream of ticket facts (no I/O, time injected).

Four kinds, each with a level (blue < yellow < orange < red, 蓝/黄/橙/红) and a Chinese
explanation; the rules are a versioned data file (``data/warning_rules.json``):

* ``burst`` (集中爆发): one category in one street above its rolling baseline. The baseline is
  the street+category's mean count per window over the ``baseline_days`` before the window
  (floored, so a quiet pair does not alarm on its second ticket); a window count with a Poisson
  upper tail below ``p_value`` and at least ``min_count`` raises one warning when it first
  crosses the threshold.
* ``repeat_caller`` / ``repeat_address`` (重复诉求): the same caller (HMAC key from intake) or
  the same normalised address ``min_count`` times within ``window_days``.
* ``mass_incident`` (可能的群体性事件): ``min_callers`` distinct callers on one event in a short
  window: same street and category, and texts similar (character-bigram Jaccard).
* ``keyword`` (舆情关键词): a configurable list by level.

Detection is a function of the new fact and the facts before it (``assess``), so the service can
load its history from the store and a replay computes the same deterministic warning ids.
"""

from __future__ import annotations

import html
import json
import math
import re
import unicodedata
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hotline import pb
from hotline.v1 import ticket_pb2, warnings_pb2

RULES_FILE = Path(__file__).parent.parent / "data" / "warning_rules.json"
LEVELS = ("blue", "yellow", "orange", "red")
LEVEL_NAMES = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
KINDS = ("burst", "repeat_caller", "repeat_address", "mass_incident", "keyword")
KIND_NAMES = {"burst": "集中爆发预警", "repeat_caller": "重复来电预警", "repeat_address": "同一地址重复诉求预警",
              "mass_incident": "可能的群体性事件预警", "keyword": "舆情关键词预警"}
UNKNOWN_CATEGORY = "未分类"


@dataclass(frozen=True)
class Rules:
    version: str
    burst: dict[str, float]
    repeat: dict[str, float]
    mass: dict[str, float]
    keywords: dict[str, tuple[str, ...]]
    placeholders: tuple[str, ...]
    unit_forms: tuple[tuple[str, str], ...]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> Rules:
        return cls.of(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Rules:
        forms = doc["address"]["unit_forms"]
        return cls(
            version=doc["version"], burst=doc["burst"], repeat=doc["repeat"], mass=doc["mass_incident"],
            keywords={level: tuple(words) for level, words in doc["keywords"].items()},
            placeholders=tuple(sorted(doc["address"]["placeholders"], key=len, reverse=True)),
            unit_forms=tuple(sorted(forms.items(), key=lambda kv: len(kv[0]), reverse=True)),
        )


@dataclass(frozen=True)
class Fact:
    """What the detectors need of one received ticket."""

    ticket_id: str
    at: datetime
    street: str
    category: str
    address: str  # normalised (normalise_address)
    caller_key: str  # HMAC of the phone; "" when anonymous
    text: str


_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise_address(address: str, rules: Rules) -> str:
    """One form per place: full-width to half-width (NFKC), no spaces or punctuation, one form for
    栋/幢/座/号楼 and 单元, placeholders such as 不愿透露具体位置 dropped (-> "")."""
    text = unicodedata.normalize("NFKC", address)
    text = _PUNCT.sub("", text)
    for placeholder in rules.placeholders:
        text = text.replace(placeholder, "")
    for form, unified in rules.unit_forms:
        text = text.replace(form, unified)
    return text if len(text) >= 2 else ""


def street_finder(directory: dict[str, Any]) -> Callable[[str], str]:
    """The street (街道 name) an address lies in, by the longest place of routing's jurisdiction
    gazetteer (hotline/data/directory.json) it names; "" when it names none."""
    names = {u["unit_id"]: u["name"] for u in directory["units"] if u["unit_type"] == "UNIT_TYPE_STREET"}
    places = {p["name"]: names[p["street"]] for p in directory["gazetteer"] if p["street"] in names}
    places.update({name: name for name in names.values()})
    ordered = sorted(places, key=len, reverse=True)

    def find(address: str) -> str:
        return next((places[p] for p in ordered if p in address), "")
    return find


def fact_of(ticket: ticket_pb2.Ticket, rules: Rules, street_of: Callable[[str], str] = lambda _: "") -> Fact:
    """A received ticket (intake's TicketReceived, without contact data) as a fact."""
    return Fact(
        ticket_id=ticket.ticket_id, at=pb.dt(ticket.received_at), street=ticket.street or street_of(ticket.address),
        category=ticket.category or UNKNOWN_CATEGORY, address=normalise_address(ticket.address, rules),
        caller_key=ticket.caller_key, text=f"{ticket.title} {ticket.content}".strip(),
    )


def bigrams(text: str) -> frozenset[str]:
    chars = _PUNCT.sub("", unicodedata.normalize("NFKC", text))
    return frozenset(chars[i:i + 2] for i in range(len(chars) - 1))


def similarity(a: str, b: str) -> float:
    """Character-bigram Jaccard similarity of two texts (0..1)."""
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y) if x and y else 0.0


def poisson_tail(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam)."""
    if k <= 0:
        return 1.0
    term = math.exp(-lam)
    below = term
    for i in range(1, k):
        term *= lam / i
        below += term
    return max(0.0, 1.0 - below)


def _warning(kind: str, level: str, explanation: str, fact: Fact, tickets: Iterable[str], rules: Rules,
             subject: str = "") -> warnings_pb2.EarlyWarning:
    return warnings_pb2.EarlyWarning(
        warning_id=f"{fact.ticket_id}.{kind}", kind=kind, level=level, explanation=explanation,
        ticket_ids=sorted(set(tickets)), street=fact.street, category=fact.category, subject=subject,
        raised_at=pb.ts(fact.at), rules_version=rules.version)


@dataclass(frozen=True)
class History:
    """The earlier facts ``assess`` looks at (the service loads them from the store)."""

    same_place: Sequence[Fact] = ()  # same street and category, within the burst baseline span
    same_caller: Sequence[Fact] = ()  # same caller key, within the repeat window
    same_address: Sequence[Fact] = ()  # same normalised address, within the repeat window
    observed_since: datetime | None = None  # when the stream began: the baseline covers only what was seen


def horizon(rules: Rules) -> timedelta:
    """How far back ``assess`` looks at most."""
    return max(timedelta(hours=rules.burst["window_hours"]) + timedelta(days=rules.burst["baseline_days"]),
               timedelta(days=rules.repeat["window_days"]), timedelta(hours=rules.mass["window_hours"]))


def assess(fact: Fact, history: History, rules: Rules) -> list[warnings_pb2.EarlyWarning]:
    """The warnings ``fact`` raises given the facts before it (ordered or not; later ones ignored)."""
    def before(facts: Sequence[Fact], span: timedelta) -> list[Fact]:
        return [f for f in facts if fact.at - span <= f.at <= fact.at and f.ticket_id != fact.ticket_id]

    out = []
    out += _burst(fact, before(history.same_place, horizon(rules)), history.observed_since, rules)
    out += _repeat(fact, before(history.same_caller, timedelta(days=rules.repeat["window_days"])), rules, "caller")
    out += _repeat(fact, before(history.same_address, timedelta(days=rules.repeat["window_days"])), rules, "address")
    out += _mass(fact, before(history.same_place, timedelta(hours=rules.mass["window_hours"])), rules)
    out += _keywords(fact, rules)
    return out


def _burst(fact: Fact, earlier: list[Fact], since: datetime | None, rules: Rules) -> list[warnings_pb2.EarlyWarning]:
    if not fact.street or fact.category == UNKNOWN_CATEGORY or since is None:
        return []
    r = rules.burst
    window = timedelta(hours=r["window_hours"])
    in_window = [f for f in earlier if f.at > fact.at - window]
    baseline = [f for f in earlier if f.at <= fact.at - window]
    covered = min(timedelta(days=r["baseline_days"]), fact.at - window - since)
    if covered < timedelta(days=r["warmup_days"]):
        return []  # no baseline yet
    per_window = max(r["baseline_floor_per_day"] * r["window_hours"] / 24, len(baseline) * (window / covered))

    def alarming(count: int) -> bool:
        return count >= r["min_count"] and poisson_tail(count, per_window) < r["p_value"]

    count = len(in_window) + 1
    if not alarming(count) or alarming(count - 1):
        return []  # only when the window first crosses the threshold
    level = "red" if count >= r["red_ratio"] * max(per_window, r["min_count"]) else "orange"
    why = (f"{fact.street}「{fact.category}」类诉求{r['window_hours']:g}小时内{count}件，"
           f"超出近{r['baseline_days']:g}天基线（每{r['window_hours']:g}小时约{per_window:.1f}件，"
           f"泊松检验 p<{r['p_value']:g}）")
    return [_warning("burst", level, why, fact,
                     [f.ticket_id for f in in_window] + [fact.ticket_id], rules, f"{fact.street}/{fact.category}")]


def _repeat(fact: Fact, earlier: list[Fact], rules: Rules, by: str) -> list[warnings_pb2.EarlyWarning]:
    subject = fact.caller_key if by == "caller" else fact.address
    if not subject:
        return []
    r = rules.repeat
    count = len(earlier) + 1
    if count not in (r["min_count"], r["orange_count"]):
        return []  # at the threshold and once more when it grows: not on every later call
    level = "orange" if count >= r["orange_count"] else "yellow"
    who = "同一来电人" if by == "caller" else f"同一地址（{fact.address}）"
    why = f"{who}{r['window_days']:g}天内第{count}次反映诉求（最近一次：{fact.category}）"
    return [_warning(f"repeat_{by}", level, why, fact, [f.ticket_id for f in earlier] + [fact.ticket_id],
                     rules, subject)]


def _mass(fact: Fact, earlier: list[Fact], rules: Rules) -> list[warnings_pb2.EarlyWarning]:
    if not fact.street:
        return []
    r = rules.mass
    alike = [f for f in earlier if similarity(f.text, fact.text) >= r["text_similarity"]]
    callers = {f.caller_key or f.ticket_id for f in alike}
    me = fact.caller_key or fact.ticket_id
    if me in callers:
        return []  # the same caller again adds no one
    count = len(callers) + 1
    if count not in (r["min_callers"], r["red_callers"]):
        return []
    level = "red" if count >= r["red_callers"] else "orange"
    why = (f"{r['window_hours']:g}小时内{count}名不同来电人反映{fact.street}同一事件（{fact.category}，"
           f"内容相似度≥{r['text_similarity']:g}），可能引发群体性事件")
    return [_warning("mass_incident", level, why, fact,
                     [f.ticket_id for f in alike] + [fact.ticket_id], rules, fact.address)]


def _keywords(fact: Fact, rules: Rules) -> list[warnings_pb2.EarlyWarning]:
    text = unicodedata.normalize("NFKC", fact.text)
    for level in reversed(LEVELS):
        found = [w for w in rules.keywords.get(level, ()) if w in text]
        if found:
            why = f"诉求内容含舆情敏感词：{'、'.join(found)}"
            return [_warning("keyword", level, why, fact, [fact.ticket_id], rules, "、".join(found))]
    return []


@dataclass
class Detector:
    """The detectors over an in-memory stream (simulations, benchmarks); the service keeps the
    same history in its store instead."""

    rules: Rules
    _place: dict[tuple[str, str], deque[Fact]] = field(default_factory=lambda: defaultdict(deque))
    _caller: dict[str, deque[Fact]] = field(default_factory=lambda: defaultdict(deque))
    _address: dict[str, deque[Fact]] = field(default_factory=lambda: defaultdict(deque))
    since: datetime | None = None

    def observe(self, fact: Fact) -> list[warnings_pb2.EarlyWarning]:
        keep = horizon(self.rules)
        place = self._place[(fact.street, fact.category)]
        caller = self._caller[fact.caller_key] if fact.caller_key else deque()
        address = self._address[fact.address] if fact.address else deque()
        for queue in (place, caller, address):
            while queue and queue[0].at < fact.at - keep:
                queue.popleft()
        self.since = self.since or fact.at
        found = assess(fact, History(list(place), list(caller), list(address), self.since), self.rules)
        for queue in (place, caller, address):
            queue.append(fact)
        return found


def letter(warning: warnings_pb2.EarlyWarning, tz: Any, number: str = "") -> str:
    """The warning letter (预警函) as an HTML document in Chinese."""
    raised = pb.dt(warning.raised_at).astimezone(tz).strftime("%Y年%m月%d日 %H:%M")
    e = html.escape
    tickets = "".join(f"<li>{e(t)}</li>" for t in warning.ticket_ids)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>预警函 {e(warning.warning_id)}</title></head>
<body>
<h1>区12345热线办 预警函</h1>
<p>编号：{e(number or warning.warning_id)}</p>
<p>预警类型：{e(KIND_NAMES.get(warning.kind, warning.kind))}　\
预警等级：{e(LEVEL_NAMES.get(warning.level, warning.level))}</p>
<p>街道：{e(warning.street or "—")}　诉求类别：{e(warning.category or "—")}　预警时间：{e(raised)}</p>
<h2>预警说明</h2>
<p>{e(warning.explanation)}</p>
<h2>涉及工单（{len(warning.ticket_ids)}件）</h2>
<ol>{tickets}</ol>
<p>请相关承办单位高度重视，及时核查处置，并将处置情况反馈区12345热线办。</p>
<p>预警规则版本：{e(warning.rules_version)}</p>
</body></html>
"""
