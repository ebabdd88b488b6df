"""Personal data (个人信息) of callers: masks for responses, a keyed hash for lookups, and
the log processor that keeps phone numbers out of every log line.

Who sees a caller's name and phone in clear: the hotline office, and the unit handling that
ticket (it has to call the citizen back). Everyone else gets masks. Events to routing and
metrics carry no caller contact at all; repeat detection keys on :func:`keyed_hash`, never
on the number. The dead-letter topic keeps the original bytes of bad input and so may hold
personal data: treat it as sensitive (restricted ACLs, short retention).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import MutableMapping
from typing import Any

# Mainland mobile numbers (1[3-9]x xxxx xxxx, optionally +86) and landlines (0xx-xxxxxxxx).
PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)|(?<!\d)(0\d{2,3})-?(\d{7,8})(?!\d)")
SENSITIVE_KEYS = frozenset({"phone", "caller_phone", "mobile", "caller_name", "caller", "contact", "id_number"})


def mask_phone(phone: str) -> str:
    """``13812345678`` -> ``138****5678``; other numbers keep their last four digits."""
    digits = re.sub(r"\D", "", phone)
    if not digits:
        return ""
    if len(digits) >= 11 and digits[-11] == "1":
        return f"{digits[-11:-8]}****{digits[-4:]}"
    return "*" * max(0, len(digits) - 4) + digits[-4:]


def mask_name(name: str) -> str:
    """``张三丰`` -> ``张**``: the family name stays (how call-backs address people)."""
    name = name.strip()
    return name[:1] + "*" * (len(name) - 1) if name else ""


def mask_text(text: str) -> str:
    """Every phone number in free text masked (complaint texts often contain one)."""
    def masked(m: re.Match[str]) -> str:
        return mask_phone(m.group(0))

    return PHONE.sub(masked, text)


def keyed_hash(secret: str, value: str) -> str:
    """HMAC-SHA256 of ``value``: equal inputs match, the number cannot be read back."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def redact_log(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: known personal fields masked, phone patterns masked anywhere."""
    for key, value in list(event.items()):
        if key in SENSITIVE_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = mask_text(value)
        elif isinstance(value, dict | list | tuple):
            event[key] = mask_text(repr(value))
    return event


def mask_address(address: str) -> str:
    """``瑞金路街道瑞金北村12栋3单元`` -> ``瑞金路街道瑞金北村***``: the place stays (figures by
    place need it), house and room numbers go."""
    cut = next((i for i, ch in enumerate(address) if ch.isdigit()), len(address))
    return address[:cut] + ("***" if cut < len(address) else "")
