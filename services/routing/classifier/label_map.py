"""From a classifier label to a category of the responsibility list (首接负责主协办清单).

The classifier learns whatever labels its training data has (the seed data's 一级标签:
城乡建设, 商贸旅游, ...; after ``hotline classify retrain`` the list's own categories). Routing
needs one of the list's 10 categories. ``services/routing/data/label_map.json`` (versioned)
says how, explicitly:

1. ``labels``: each training label's default category (城乡建设 -> 城市管理). A label that
   already is a category maps to itself.
2. ``refinements``: a broad default category becomes a narrower one when the ticket's text
   carries that category's keywords: score = ``title_weight`` per distinct keyword in the
   title + 1 per distinct keyword in the body (one inside another found, 停车 in 停车场,
   counts once); the best refinement whose ``from`` holds the default category wins when
   its score reaches ``min_score`` (ties: the first in the file). This is how 城乡建设
   tickets reach 物业管理, 停车管理 and 水电气热, and 教育文体 or 商贸旅游 tickets reach
   文旅与政务服务.
3. Taxonomy rows (label, 二级分类, 三级分类) map the same way through the refinements'
   ``taxonomy`` names, so the label descriptions a model trains on can be mapped too.

Pure: no I/O besides ``LabelMap.load``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.routing.classifier.errors import DataError
from services.routing.classifier.strings import title_of

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "label_map.json"


@dataclass(frozen=True)
class Refinement:
    category: str
    sources: tuple[str, ...]  # default categories this refinement may narrow
    keywords: tuple[str, ...]
    taxonomy: tuple[str, ...]

    def found(self, text: str) -> list[str]:
        """Keywords in ``text``; one inside a longer one found too (停车 in 停车场) counts once."""
        hits = [k for k in self.keywords if k in text]
        return [k for k in hits if not any(k != m and k in m for m in hits)]

    def score(self, title: str, body: str, title_weight: int) -> int:
        return title_weight * len(self.found(title)) + len(self.found(body))


@dataclass(frozen=True)
class Mapped:
    category: str
    default: str  # the label's category before refinement
    refined_by: tuple[str, ...] = ()  # keywords that refined it (empty: the default)


class LabelMap:
    def __init__(self, spec: dict[str, Any]) -> None:
        try:
            self.version = str(spec["version"])
            self.labels: dict[str, str] = {str(k): str(v) for k, v in spec["labels"].items()}
            self.min_score = int(spec.get("min_score", 2))
            self.title_weight = int(spec.get("title_weight", 2))
            self.refinements = [Refinement(str(r["category"]), tuple(r["from"]), tuple(r["keywords"]),
                                           tuple(r.get("taxonomy", ()))) for r in spec["refinements"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"label map: malformed ({exc!r})") from exc
        self.spec = spec

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> LabelMap:
        p = Path(path)
        try:
            return cls(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise DataError(f"label map {p}: {exc}") from exc

    @property
    def categories(self) -> set[str]:
        """Every category this map can produce."""
        return set(self.labels.values()) | {r.category for r in self.refinements}

    def check(self, categories: Iterable[str]) -> None:
        """Refuse a map naming a category the responsibility list does not have."""
        unknown = sorted(self.categories - set(categories))
        if unknown:
            raise DataError(f"label map {self.version} names categories the list lacks: {', '.join(unknown)}")

    def default_of(self, label: str) -> str | None:
        if label in self.labels:
            return self.labels[label]
        return label if label in self.categories else None

    def map(self, label: str, text: str) -> Mapped | None:
        """The category of a ticket ``text`` (title, newline, body) the classifier gave ``label``."""
        default = self.default_of(label)
        if default is None:
            return None
        title = title_of(text)
        body = text[len(title):] if text.lstrip().startswith(title) else text
        best, best_score = None, 0
        for r in self.refinements:
            if default in r.sources and r.category != default:
                s = r.score(title, body, self.title_weight)
                if s > best_score:
                    best, best_score = r, s
        if best is None or best_score < self.min_score:
            return Mapped(default, default)
        return Mapped(best.category, default, tuple(best.found(text)))

    def category(self, label: str, text: str) -> str | None:
        mapped = self.map(label, text)
        return mapped.category if mapped else None

    def categories_of(self, labels: Sequence[str], texts: Sequence[str]) -> list[str | None]:
        return [self.category(label, text) for label, text in zip(labels, texts, strict=True)]

    def taxonomy_category(self, label: str, path: Sequence[str]) -> str | None:
        """Category of a taxonomy row: ``label`` with its lower levels (二级分类, 三级分类)."""
        default = self.default_of(label)
        if default is None:
            return None
        for r in self.refinements:
            if default in r.sources and any(p in r.taxonomy for p in path if p):
                return r.category
        return default
