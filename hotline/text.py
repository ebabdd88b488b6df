"""The one validation of ticket text, shared by intake (city tickets and deputy submissions as
they arrive) and deputy liaison (a deputy's submission as it is typed): how text is cleaned and
how long each field may be. What intake accepts, every service after it handles."""

from __future__ import annotations

import re
import unicodedata

MAX_TEXT_CHARS = 20_000
# characters, after cleaning
TEXT_LIMITS = {"title": 500, "content": MAX_TEXT_CHARS, "category": 100, "address": 500, "street": 100,
               "channel": 32}
CALLER_LIMITS = {"name": 100, "phone": 32}
MAX_TAGS, MAX_TAG_CHARS = 20, 50
# an attachment is a reference a browser may open, nothing else (a deputy's photos and files)
ATTACHMENT_URI = r"^https?://\S{1,500}$"
MAX_ATTACHMENTS, MAX_ATTACHMENT_NAME_CHARS = 20, 200
# C0 and C1 control characters except tab and newline (a CR is turned into a newline first), and
# lone surrogates: what no text field may carry past intake
_DROPPED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text as every service after intake sees it: CR and CRLF become LF, control characters
    other than tab and newline are dropped, and the result is in Unicode NFC."""
    text = _DROPPED.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFC", text)

