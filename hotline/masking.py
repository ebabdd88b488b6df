"""One masking table by role (issue #19): who sees which personal field in clear, read by every
output - APIs, exports, reports, lists, warnings and audit reads - instead of each deciding alone.

| kind      | fields                                                     | in clear for                  |
|-----------|------------------------------------------------------------|-------------------------------|
| contact   | caller/citizen name and phone (``caller``, ``citizen``...) | office, admin; the handling   |
|           |                                                            | unit and the deputy who       |
|           |                                                            | brought it, by their scope    |
| address   | house and room numbers of an address                       | office, admin, unit           |
| free text | phone numbers inside complaint texts                       | office, admin, unit           |
| warnings  | a repeat caller's key, a repeated address's house number   | contact / address rows above  |

Everyone else (leader, viewer, liaison, deputy for others' data, and any file that leaves the
platform without a reader's role, e.g. scheduled reports) gets masks: ``张**``, ``138****5678``,
``幸福路***``. Audit snapshots never store a caller's or citizen's contact (:func:`strip_contact`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hotline import privacy
from hotline.policy import Role

CONTACT, ADDRESS, TEXT = "contact", "address", "text"
CLEAR: Mapping[str, frozenset[Role]] = {
    CONTACT: frozenset({Role.OFFICE, Role.ADMIN}),
    ADDRESS: frozenset({Role.OFFICE, Role.ADMIN, Role.UNIT}),
    TEXT: frozenset({Role.OFFICE, Role.ADMIN, Role.UNIT}),
}
# field name -> (kind, mask)
FIELDS: Mapping[str, tuple[str, Callable[[str], str]]] = {
    "caller_name": (CONTACT, privacy.mask_name),
    "caller_phone": (CONTACT, privacy.mask_phone),
    "citizen_name": (CONTACT, privacy.mask_name),
    "citizen_phone": (CONTACT, privacy.mask_phone),
    "address": (ADDRESS, privacy.mask_address),
    "content": (TEXT, privacy.mask_text),
    "text": (TEXT, privacy.mask_text),
}
# objects that are a person's contact as a whole: {"name": ..., "phone": ...}
CONTACT_OBJECTS = frozenset({"caller", "citizen"})
# what an audit snapshot never keeps
CONTACT_KEYS = frozenset({*CONTACT_OBJECTS, "caller_name", "caller_phone", "citizen_name", "citizen_phone",
                          "phone", "mobile", "id_number"})


def clear(kind: str, role: Role | str | None, *, own: bool = False) -> bool:
    """Whether ``role`` reads ``kind`` in clear; ``own``: the data is within the reader's own scope
    in the sense of the table (the handling unit's case, the deputy's own submission)."""
    if role is None:
        return False
    if own and kind == CONTACT and role in (Role.UNIT, Role.DEPUTY):
        return True
    return role in CLEAR[kind]


def mask_value(name: str, value: Any, role: Role | str | None, *, own: bool = False) -> Any:
    known = FIELDS.get(name)
    if known is None or not isinstance(value, str) or clear(known[0], role, own=own):
        return value
    return known[1](value)


def mask_doc(doc: Any, role: Role | str | None, *, own: bool = False) -> Any:
    """A copy of a JSON-like document with every field of the table masked for ``role``."""
    if isinstance(doc, list):
        return [mask_doc(v, role, own=own) for v in doc]
    if not isinstance(doc, dict):
        return doc
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in CONTACT_OBJECTS and isinstance(value, dict):
            out[key] = value if clear(CONTACT, role, own=own) else {
                k: (privacy.mask_name(v) if k == "name" else privacy.mask_phone(v) if k == "phone" else v)
                if isinstance(v, str) else v for k, v in value.items()}
        elif isinstance(value, dict | list):
            out[key] = mask_doc(value, role, own=own)
        else:
            out[key] = mask_value(key, value, role, own=own)
    return out


def mask_warning(warning: Any, role: Role | str | None) -> Any:
    """An early warning (warnings_pb2.EarlyWarning) as ``role`` may read it: the caller key of a
    repeat-caller warning only for those who read contact, a repeated address's house numbers only
    for those who read addresses (in ``subject`` and in the explanation)."""
    shown = type(warning)()
    shown.CopyFrom(warning)
    if shown.kind == "repeat_caller" and not clear(CONTACT, role):
        shown.subject = ""
    if shown.kind == "repeat_address" and shown.subject and not clear(ADDRESS, role):
        masked = privacy.mask_address(shown.subject)
        shown.explanation = shown.explanation.replace(shown.subject, masked)
        shown.subject = masked
    return shown


def strip_contact(doc: Any) -> Any:
    """A copy without any caller or citizen contact (audit snapshots, kept for years)."""
    if isinstance(doc, list):
        return [strip_contact(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    return {k: strip_contact(v) for k, v in doc.items() if k not in CONTACT_KEYS}
