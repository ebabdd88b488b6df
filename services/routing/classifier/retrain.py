"""Learning from the district's decisions (issue 9, item 7): ``hotline classify retrain``.

Every office dispatch (派单), approved re-dispatch (改派) and recategorisation (改类) says
which list category a ticket really belonged to: a labelled example in the list's own label
space. ``retrain``:

1. reads the decisions (``load_decisions``: a JSONL or CSV file today; a store adapter
   passes the same records as dicts later) and keeps the latest decision per ticket;
2. sets the most recent ones aside (newest ``recent_fraction`` by ``decided_at``);
3. trains a candidate on the seed data (its labels mapped to list categories through the
   label map, data/label_map.json) plus the older decisions;
4. scores the current model and the candidate on the recent decisions, both through the
   same label map, so a 7-label seed model and a category model compare fairly;
5. promotes the candidate (it replaces the model folder; the old one is kept as
   ``<folder>.previous``) only when it is better by more than ``min_gain``.

Decision record (JSONL one object per line, or CSV with these columns)::

    {"ticket_id": "T-2026-000123", "title": "小区停车位被占", "content": "...",
     "category": "停车管理", "decided_at": "2026-11-20T09:30:00+08:00", "kind": "dispatch"}

``text`` may replace title and content; ``kind`` (dispatch | redispatch | recategorize)
and ``ticket_id`` are optional; ``decided_at`` needs a timezone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hotline.clock import Clock, SystemClock
from services.routing.classifier import evaluation
from services.routing.classifier.data import load_examples, load_label_descriptions
from services.routing.classifier.errors import DataError, ModelFormatError
from services.routing.classifier.label_map import LabelMap
from services.routing.classifier.model import TicketClassifier, load_model, save_model
from services.routing.classifier.text import compose, normalize
from services.routing.classifier.training import Corpus, TrainConfig, describe_fit, fit

KINDS = ("dispatch", "redispatch", "recategorize")  # 派单, 改派, 改类
PREVIOUS_SUFFIX = ".previous"


@dataclass(frozen=True)
class OfficeDecision:
    """One labelled example from the district: the category the office settled on."""

    text: str  # title, newline, body (``text.compose``)
    category: str
    decided_at: datetime
    ticket_id: str = ""
    kind: str = ""


def _parse_time(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise DataError(f"{where}: decided_at {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise DataError(f"{where}: decided_at {value!r} has no timezone")
    return when


def _decision(record: Mapping[str, Any], where: str) -> OfficeDecision:
    text = str(record.get("text") or "").strip() or compose(str(record.get("title") or ""),
                                                            str(record.get("content") or ""))
    category = str(record.get("category") or "").strip()
    if not text:
        raise DataError(f"{where}: no text (give text, or title and content)")
    if not category:
        raise DataError(f"{where}: no category")
    if record.get("decided_at") in (None, ""):
        raise DataError(f"{where}: no decided_at")
    kind = str(record.get("kind") or "").strip()
    if kind and kind not in KINDS:
        raise DataError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    return OfficeDecision(text, category, _parse_time(record["decided_at"], where),
                          str(record.get("ticket_id") or "").strip(), kind)


def load_decisions(source: str | Path | Iterable[Mapping[str, Any]]) -> list[OfficeDecision]:
    """Office decisions from a ``.jsonl``/``.csv`` file or from records (e.g. store documents).

    Returns them oldest first, keeping only the latest decision of each ticket (a ticket
    dispatched, then recategorised counts once, with its final category).
    """
    records: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"decisions file {path} does not exist")
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{n}: not JSON: {exc}") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{n}: not a JSON object")
                records.append((f"{path}:{n}", obj))
        else:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            for n, row in enumerate(reader, 2):
                records.append((f"{path}:{n}", row))
    else:
        records = [(f"record {n}", r) for n, r in enumerate(source, 1)]
    decisions = [_decision(r, where) for where, r in records]
    decisions.sort(key=lambda d: d.decided_at)
    latest: dict[str, int] = {}
    for i, d in enumerate(decisions):
        if d.ticket_id:
            latest[d.ticket_id] = i
    return [d for i, d in enumerate(decisions) if not d.ticket_id or latest[d.ticket_id] == i]


def split_recent(decisions: list[OfficeDecision], fraction: float) -> tuple[list[OfficeDecision],
                                                                              list[OfficeDecision]]:
    """(older, recent): the newest ``fraction`` of the decisions (sorted oldest first) are recent."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("the recent fraction must lie in (0, 1)")
    k = max(1, round(len(decisions) * fraction)) if decisions else 0
    return decisions[: len(decisions) - k], decisions[len(decisions) - k:]


@dataclass
class Score:
    model_version: str
    accuracy: float
    macro_f1: float
    coverage: float  # share decided automatically at the model's own threshold
    precision_at_threshold: float | None


def score(model: TicketClassifier, decisions: list[OfficeDecision], label_map: LabelMap) -> Score:
    """How often a model's label, mapped to a list category, is the office's category."""
    texts = [d.text for d in decisions]
    truth = [d.category for d in decisions]
    preds = model.predict_batch(texts)
    got = [label_map.category(p.label, t) or f"?{p.label}" for p, t in zip(preds, texts, strict=True)]
    decided = [g == c for p, g, c in zip(preds, got, truth, strict=True) if not p.abstained]
    return Score(model.model_version, evaluation.accuracy(truth, got), evaluation.macro_f1(truth, got),
                 len(decided) / len(decisions) if decisions else 0.0,
                 sum(decided) / len(decided) if decided else None)


@dataclass
class SeedData:
    path: Path
    text_columns: list[str]
    label_column: str


@dataclass
class RetrainResult:
    promoted: bool
    reason: str
    metric: str
    current: Score | None
    candidate: Score
    recent: int
    recent_from: str
    recent_to: str
    trained_on: dict[str, int] = field(default_factory=dict)
    model_dir: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("metadata")
        return out


def seed_from_metadata(model_dir: Path) -> SeedData | None:
    """The seed data a model folder says it was trained from, if that file is still there."""
    try:
        meta = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
        data = meta.get("seed_data") or meta["data"]
        path = Path(data["path"])
        return SeedData(path, list(data["text_columns"]), str(data["label_column"])) if path.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def retrain(model_dir: str | Path, decisions: list[OfficeDecision], seed: SeedData | None = None,
            descriptions: str | Path | None = None, label_map: LabelMap | None = None,
            config: TrainConfig | None = None, recent_fraction: float = 0.2, min_recent: int = 20,
            min_gain: float = 0.0, metric: str = "accuracy", dry_run: bool = False,
            clock: Clock | None = None, log: Callable[[str], None] | None = None) -> RetrainResult:
    """Train a candidate on seed data + older decisions; promote it if better on the recent ones."""
    say = log or (lambda _msg: None)
    cfg = config or TrainConfig(cv_folds=0)
    lmap = label_map or LabelMap.load()
    now = (clock or SystemClock()).now()
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError("metric must be accuracy or macro_f1")
    started = time.perf_counter()
    folder = Path(model_dir)
    unknown = sorted({d.category for d in decisions} - lmap.categories)
    if unknown:
        raise DataError(f"decisions name categories the label map does not know: {', '.join(unknown)}")
    older, recent = split_recent(decisions, recent_fraction)
    if len(recent) < min_recent:
        raise DataError(f"{len(recent)} recent decisions to compare on (of {len(decisions)}); at least "
                        f"{min_recent} are needed: wait for more decisions or lower --min-recent")

    current: TicketClassifier | None = None
    if (folder / "metadata.json").is_file():
        current = load_model(folder)  # ModelFormatError for a damaged or foreign folder
    elif folder.exists() and any(folder.iterdir()):
        raise ModelFormatError(f"{folder} is not a classifier model folder")
    seed = seed or (seed_from_metadata(folder) if current else None)

    texts = [d.text for d in older]
    labels = [d.category for d in older]
    counts = {"decisions": len(older), "seed_rows": 0, "seed_rows_unmapped": 0}
    seed_meta: dict[str, Any] | None = None
    if seed is not None:
        ex = load_examples(seed.path, seed.text_columns, seed.label_column)
        mapped = lmap.categories_of(ex.labels, ex.texts)
        for t, c in zip(ex.texts, mapped, strict=True):
            if c is None:
                counts["seed_rows_unmapped"] += 1
            else:
                texts.append(t)
                labels.append(c)
                counts["seed_rows"] += 1
        seed_meta = {"path": str(seed.path), "sha256": ex.table.sha256, "text_columns": seed.text_columns,
                     "label_column": seed.label_column, "rows_used": counts["seed_rows"]}
        if descriptions is None:
            beside = seed.path.parent / "taxonomy.csv"
            descriptions = beside if beside.is_file() else None
    corpus = Corpus(texts, labels, [], [])
    if descriptions is not None:
        d_texts, owners, _ = load_label_descriptions(descriptions, lmap.categories, lmap.taxonomy_category)
        corpus.desc_texts, corpus.desc_labels = [normalize(t) for t in d_texts], owners
    few = {c: n for c, n in Counter(corpus.labels).items() if n < cfg.min_per_label}
    if few:
        say("left out (fewer than {} examples): {}".format(
            cfg.min_per_label, ", ".join(f"{c} {n}" for c, n in sorted(few.items()))))
        keep = [i for i, c in enumerate(corpus.labels) if c not in few]
        corpus.texts = [corpus.texts[i] for i in keep]
        corpus.labels = [corpus.labels[i] for i in keep]
    say(f"training the candidate on {len(corpus.texts)} examples ({counts['decisions']} decisions, "
        f"{counts['seed_rows']} seed rows); {len(recent)} recent decisions held back for the comparison")
    fitted = fit(corpus, cfg, say)
    candidate = TicketClassifier(fitted.state, model_version="candidate")
    cand_score = score(candidate, recent, lmap)
    cur_score = score(current, recent, lmap) if current else None

    def value(s: Score) -> float:
        return s.accuracy if metric == "accuracy" else s.macro_f1

    if cur_score is None:
        promoted, reason = True, "no current model"
    else:
        gain = value(cand_score) - value(cur_score)
        promoted = gain > min_gain
        reason = (f"{metric} {'+' if gain >= 0 else ''}{gain:.4f} "
                  f"{'>' if promoted else '<='} min gain {min_gain:.4f}")
    if dry_run:
        promoted, reason = False, f"dry run ({reason})"

    metadata = describe_fit(fitted, corpus, cfg, started)
    metadata["created_at"] = now.isoformat(timespec="seconds")
    metadata["data"] = {"path": seed_meta["path"] if seed_meta else "", "sha256": seed_meta["sha256"] if seed_meta
                        else "", "rows": len(corpus.texts), "rows_used": len(corpus.texts), "rows_skipped": 0,
                        "text_columns": seed.text_columns if seed else [], "label_column": seed.label_column
                        if seed else ""}
    metadata["seed_data"] = seed_meta
    metadata["label_map"] = {"version": lmap.version,
                             "sha256": hashlib.sha256(json.dumps(lmap.spec, sort_keys=True).encode()).hexdigest()}
    metadata["retrain"] = {
        "decisions": len(decisions), "trained_decisions": len(older), "recent_decisions": len(recent),
        "trained_until": older[-1].decided_at.isoformat() if older else None,
        "recent_from": recent[0].decided_at.isoformat(), "recent_to": recent[-1].decided_at.isoformat(),
        "metric": metric, "min_gain": min_gain, "reason": reason,
        "candidate": asdict(cand_score) | {"model_version": None},
        "previous": asdict(cur_score) if cur_score else None,
    }
    result = RetrainResult(promoted, reason, metric, cur_score, cand_score, len(recent),
                           recent[0].decided_at.isoformat(), recent[-1].decided_at.isoformat(), counts, str(folder))
    if promoted:
        staging = folder.with_name(f".{folder.name}.candidate")
        shutil.rmtree(staging, ignore_errors=True)
        meta = save_model(fitted.state, metadata, staging)
        if folder.exists():
            previous = folder.with_name(folder.name + PREVIOUS_SUFFIX)
            shutil.rmtree(previous, ignore_errors=True)
            folder.rename(previous)
        staging.rename(folder)
        result.candidate.model_version = meta["model_version"]
        result.metadata = meta
    return result
