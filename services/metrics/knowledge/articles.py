"""Knowledge articles (知识库文章): policy answers and service guides (where, when, what to bring, QR
and link targets), each owned by a unit and reviewed on a date, edited by the office as versions.
Pure: validation and the save decision for the command path (hotline/commands.py)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from hotline.auth import Principal
from hotline.commands import Decision, Exists, Illegal, Invalid, NotFound

ARTICLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
URL = re.compile(r"^https?://\S{1,2000}$")
LINK_KINDS = {"link": "链接", "qr": "二维码", "sms": "短信链接"}
STATUSES = {"active": "有效", "retired": "已停用"}
TEXTS = {"title": (True, 120), "question": (False, 1000), "answer": (True, 5000), "where": (False, 300),
         "hours": (False, 300), "category": (False, 60), "unit_id": (True, 64), "unit_name": (False, 120)}
CONTENT = (*TEXTS, "materials", "links", "review_on", "status")  # what a version is made of


def _text(body: dict[str, Any], name: str, required: bool, most: int) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text")
    value = value.strip()
    if required and not value:
        raise Invalid(f"{name} is required")
    if len(value) > most:
        raise Invalid(f"{name} is too long (at most {most} characters)")
    return value


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """The article's content from a request body, or Invalid naming the field at fault."""
    out: dict[str, Any] = {name: _text(body, name, req, most) for name, (req, most) in TEXTS.items()}
    materials = body.get("materials", [])
    if isinstance(materials, str):
        materials = [m for m in re.split(r"[\n;；、]", materials)]
    if not isinstance(materials, list) or len(materials) > 30 or \
            not all(isinstance(m, str) and len(m) <= 200 for m in materials):
        raise Invalid("materials is a list of at most 30 items of at most 200 characters")
    out["materials"] = [m.strip() for m in materials if m.strip()]
    links = body.get("links", [])
    if not isinstance(links, list) or len(links) > 10:
        raise Invalid("links is a list of at most 10 links")
    clean = []
    for i, link in enumerate(links):
        if not isinstance(link, dict):
            raise Invalid(f"links[{i}] must be an object with label, url and kind")
        label, url, kind = (str(link.get(k, "")).strip() for k in ("label", "url", "kind"))
        if not url and not label:
            continue
        if not URL.match(url):
            raise Invalid(f"links[{i}].url must be an http(s) address")
        if kind not in LINK_KINDS:
            raise Invalid(f"links[{i}].kind must be one of {', '.join(LINK_KINDS)}")
        clean.append({"label": label[:100] or url, "url": url, "kind": kind})
    out["links"] = clean
    review_on = str(body.get("review_on", "")).strip()
    try:
        date.fromisoformat(review_on)
    except ValueError:
        raise Invalid("review_on (复核日期) must be a date YYYY-MM-DD") from None
    out["review_on"] = review_on
    status = str(body.get("status", "active") or "active")
    if status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    out["status"] = status
    return out


def save(current: dict[str, Any] | None, article_id: str, body: dict[str, Any], expected_version: int,
         actor: Principal, now: datetime, reason: str) -> Decision[dict[str, Any]]:
    """A new version of the article (version 1 creates it). ``expected_version``: the version the
    editor started from (0: a new article); a newer one saved meanwhile is refused. Saving is the
    review: the flags raised by unsatisfied evaluations are cleared (kept in ``flag_history``)."""
    if not ARTICLE_ID.match(article_id):
        raise Invalid("article_id: letters, digits, - and _, at most 64")
    content = validate(body)
    if current is None:
        if expected_version:
            raise NotFound("article", article_id)
        version = 1
    else:
        if expected_version == 0:
            raise Exists(f"article {article_id} exists already (version {current['version']})")
        if expected_version != current["version"]:
            raise Illegal(f"article {article_id} is at version {current['version']}, not {expected_version}: "
                          "someone saved it meanwhile; reload and edit again")
        if all(current.get(k) == content[k] for k in CONTENT) and not current.get("flagged"):
            raise Invalid(f"nothing changed: the article equals version {current['version']}")
        version = current["version"] + 1
    state = {
        "_id": article_id, "article_id": article_id, "version": version, **content,
        "saved_by": actor.subject, "saved_at": now, "reason": reason.strip(), "updated_at": now,
        "created_at": current["created_at"] if current else now,
        "flagged": False, "flags": [],
        "flag_history": [*(current or {}).get("flag_history", []), *(current or {}).get("flags", [])],
        "answered": list((current or {}).get("answered", [])),
    }
    return Decision(state, answer=public(state), audit={"article_version": version})


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """An article as the API answers it."""
    out = {k: v for k, v in doc.items() if k not in ("_id", "answered")}
    out["answered_count"] = len(doc.get("answered", []))
    for k in ("saved_at", "updated_at", "created_at"):
        if isinstance(out.get(k), datetime):
            out[k] = out[k].isoformat()
    out["flags"] = [{**f, "at": f["at"].isoformat() if isinstance(f.get("at"), datetime) else f.get("at")}
                    for f in doc.get("flags", [])]
    out.pop("flag_history", None)
    out["flag_count"] = len(doc.get("flag_history", []))
    return out


def review_due(doc: dict[str, Any], today: date) -> bool:
    """The review date has come (到期复核)."""
    try:
        return date.fromisoformat(str(doc.get("review_on", ""))) <= today
    except ValueError:
        return True
