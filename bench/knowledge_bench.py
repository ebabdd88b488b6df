"""Knowledge base search: retrieval quality on the labelled history and search latency at 100,000
indexed cases (docs/knowledge.md). Figures are printed (and written to bench/results/), never asserted.

Quality: the labelled TipDM messages (../shared/data/tipdm2020/labelled_sample.csv) are split once,
deterministically (``split.holdout_split``: stratified by label, an author's messages and reposts of
one text on one side; salt ``knowledge-v1``, used by nothing else and by no tuning). The kept rows
are indexed as resolved cases; for each held-out row, its title + body is the query, and recall@5
is the share of held-out rows with at least one case of the same label among the 5 most similar.
Two labels: the contest's 一级标签 (7 classes) and the list category it maps to through the routing
label map (10 categories; the data has no list item, so "item" cannot be scored here).

Latency: 100,000 cases built from the real messages' words (title, body and reply of different
messages, random category and unit), queried with 1,000 real messages, no filter and with a category
filter; p50 / p95 / p99 of one search (segmentation included, and without it).

    .venv/bin/python bench/knowledge_bench.py [--data ../shared/data/tipdm2020] [--cases 100000]
    .venv/bin/python bench/knowledge_bench.py --engine bm25s   # the comparison (pip install bm25s first)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.metrics.knowledge.index import IndexDoc, SearchIndex  # noqa: E402
from services.metrics.knowledge.text import query_words, words  # noqa: E402
from services.routing.classifier.label_map import LabelMap  # noqa: E402
from services.routing.classifier.split import duplicate_key, groups_of, holdout_split  # noqa: E402

SALT = "knowledge-v1"
CATEGORIES = ["城市管理", "物业管理", "停车管理", "水电气热", "交通出行", "消费维权", "教育卫生", "社会保障与就业",
              "环境保护", "文旅与政务服务"]


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


class Bm25sEngine:
    """The comparison: bm25s (static sparse-matrix BM25) over the same words; no incremental add,
    so a new case means re-indexing; filters by scoring a weight mask."""

    def __init__(self, docs: list[IndexDoc]) -> None:
        import bm25s  # type: ignore[import-not-found]  # optional: the comparison only
        import numpy as np

        self.np = np
        self.ids = [d.doc_id for d in docs]
        self.categories = np.array([d.category for d in docs])
        self.retriever = bm25s.BM25()
        self.retriever.index([list(d.title) * 2 + list(d.body) + list(d.answer) for d in docs], show_progress=False)

    def search(self, text: str, limit: int, category: str = "", words_: list[str] | None = None) -> list[str]:
        q = words_ if words_ is not None else query_words(text)
        mask = (self.categories == category).astype("float32") if category else None
        scores = self.retriever.get_scores(q)
        if mask is not None:
            scores = scores * mask
        top = self.np.argpartition(-scores, limit)[:limit]
        return [self.ids[i] for i in top[self.np.argsort(-scores[top])] if scores[i] > 0]


def dev_recall(data: Path, limit: int, folds: int = 5) -> float:
    """recall@5 (label) by 5-fold cross-validation on the KEPT rows only: what choices were tuned on."""
    rows = read(data / "labelled_sample.csv")
    ids = [r["留言编号"] for r in rows]
    labels = [r["一级标签"] for r in rows]
    texts = [f"{r['留言主题']}\n{r['留言详情']}" for r in rows]
    groups = groups_of([(r["留言用户"], duplicate_key(t)) for r, t in zip(rows, texts, strict=True)])
    kept, _ = holdout_split(ids, labels, groups, 0.25, salt=SALT)
    fold_of = {i: groups[i] % folds for i in kept}
    hits = 0
    for k in range(folds):
        index = SearchIndex()
        index.put(IndexDoc(f"c{i}", "case", words(rows[i]["留言主题"]), words(rows[i]["留言详情"]))
                  for i in kept if fold_of[i] != k)
        for i in (i for i in kept if fold_of[i] == k):
            found = [int(h.doc_id[1:]) for h in index.search("", "case", 5, words=query_words(texts[i], limit))]
            hits += any(labels[j] == labels[i] for j in found)
    return round(hits / len(kept), 4)


def quality(data: Path, engine: str) -> dict[str, object]:
    rows = read(data / "labelled_sample.csv")
    ids = [r["留言编号"] for r in rows]
    labels = [r["一级标签"] for r in rows]
    texts = [f"{r['留言主题']}\n{r['留言详情']}" for r in rows]
    groups = groups_of([(r["留言用户"], duplicate_key(t)) for r, t in zip(rows, texts, strict=True)])
    kept, held = holdout_split(ids, labels, groups, 0.25, salt=SALT)
    label_map = LabelMap.load()
    mapped = [label_map.category(lab, t) or lab for lab, t in zip(labels, texts, strict=True)]
    docs = [IndexDoc(f"c{i}", "case", words(rows[i]["留言主题"]), words(rows[i]["留言详情"]), (), mapped[i])
            for i in kept]
    t0 = time.perf_counter()
    if engine == "tantivy":
        index = SearchIndex()
        index.put(docs)

        def top5(i: int) -> list[str]:
            return [h.doc_id for h in index.search(texts[i], "case", 5)]
    else:
        bm = Bm25sEngine(docs)

        def top5(i: int) -> list[str]:
            return bm.search(texts[i], 5)
    built = time.perf_counter() - t0
    hit_label = hit_category = top1 = 0
    per_label: dict[str, list[int]] = {}
    for i in held:
        found = [int(d[1:]) for d in top5(i)]
        a = any(labels[j] == labels[i] for j in found)
        b = any(mapped[j] == mapped[i] for j in found)
        hit_label += a
        hit_category += b
        top1 += bool(found) and labels[found[0]] == labels[i]
        per_label.setdefault(labels[i], []).append(int(a))
    # what chance gives: 5 random kept cases, at least one of the same label
    chance = statistics.mean(1 - (1 - sum(labels[j] == labels[i] for j in kept) / len(kept)) ** 5 for i in held)
    return {
        "split": f"labelled_sample.csv, 25% held out, stratified and grouped (author, repost), salt {SALT}",
        "indexed": len(kept), "held_out": len(held), "index_seconds": round(built, 3),
        "recall_at_5_label": round(hit_label / len(held), 4),
        "recall_at_5_list_category": round(hit_category / len(held), 4),
        "top_1_same_label": round(top1 / len(held), 4),
        "recall_at_5_by_label": {k: round(sum(v) / len(v), 3) for k, v in sorted(per_label.items())},
        "chance_recall_at_5_label": round(chance, 4),
    }


def latency(data: Path, n_cases: int, n_queries: int, engine: str, seed: int = 7) -> dict[str, object]:
    rnd = random.Random(seed)
    messages = read(data / "messages_with_votes.csv") + read(data / "messages_with_replies.csv")
    replies = [r["答复意见"] for r in read(data / "messages_with_replies.csv")]
    t0 = time.perf_counter()
    titles = [words(m["留言主题"]) for m in messages]
    bodies = [words(m["留言详情"]) for m in messages]
    answers = [words(r) for r in replies]
    segment_s = time.perf_counter() - t0
    segmented = len(titles) + len(bodies) + len(answers)
    units = [f"U{n:03d}" for n in range(120)]
    docs = []
    for n in range(n_cases):
        i = rnd.randrange(len(messages))
        docs.append(IndexDoc(f"c{n}", "case", titles[i], bodies[rnd.randrange(len(bodies))],
                             answers[rnd.randrange(len(answers))], rnd.choice(CATEGORIES), rnd.choice(units)))
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    if engine == "tantivy":
        index = SearchIndex(heap_bytes=200_000_000)
        for start in range(0, n_cases, 10_000):
            index.put(docs[start:start + 10_000])
    else:
        bm = Bm25sEngine(docs)
    build_s = time.perf_counter() - t0
    rss = psutil.Process().memory_info().rss - rss0
    queries = [f"{m['留言主题']}\n{m['留言详情']}" for m in rnd.sample(messages, n_queries)]
    out: dict[str, object] = {"cases": n_cases, "queries": n_queries, "build_seconds": round(build_s, 2),
                              "index_rss_mb": round(rss / 2**20, 1),
                              "segmentation_texts_per_second": round(segmented / segment_s)}
    for label, category in (("no_filter", ""), ("category_filter", "物业管理")):
        total, search_only = [], []
        for q in queries:
            t0 = time.perf_counter()
            w = query_words(q)
            t1 = time.perf_counter()
            if engine == "tantivy":
                index.search(q, "case", 5, category=category, words=w)
            else:
                bm.search(q, 5, category, w)
            t2 = time.perf_counter()
            total.append((t2 - t0) * 1000)
            search_only.append((t2 - t1) * 1000)
        out[label] = {f"{name}_ms": {f"p{q}": round(pct(v, q), 2) for q in (50, 95, 99)} | {"max": round(max(v), 2)}
                      for name, v in (("with_segmentation", total), ("search_only", search_only))}
    if engine == "tantivy":  # incremental: one resolved case at a time, committed (what the indexer does)
        extra = [IndexDoc(f"x{n}", "case", d.title, d.body, d.answer, d.category, d.unit)
                 for n, d in enumerate(docs[:200])]
        t0 = time.perf_counter()
        for d in extra:
            index.put([d])
        out["incremental_add_commit_ms_each"] = round((time.perf_counter() - t0) * 1000 / len(extra), 2)
        t0 = time.perf_counter()
        index.put(extra)
        out["incremental_batch_of_200_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = next((p / "shared" / "data" / "tipdm2020" for p in (ROOT.parent, ROOT.parent.parent)
                    if (p / "shared" / "data" / "tipdm2020").exists()), ROOT.parent / "shared" / "data" / "tipdm2020")
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--engine", choices=("tantivy", "bm25s"), default="tantivy")
    ap.add_argument("--only", choices=("quality", "latency", "dev"), default="")
    args = ap.parse_args()
    if not (args.data / "labelled_sample.csv").exists():
        sys.exit(f"no labelled history at {args.data} (set --data)")
    result: dict[str, object] = {"engine": args.engine, "cpus": os.cpu_count(),
                                 "load_average": [round(x, 2) for x in os.getloadavg()]}
    if args.only == "dev":  # tuning: cross-validation on the kept rows, never the held-out ones
        for limit in (16, 32, 48, 64):
            print(f"query words {limit}: dev recall@5 {dev_recall(args.data, limit)}", flush=True)
        return
    if args.only != "latency":
        result["quality"] = quality(args.data, args.engine)
        print(json.dumps({"quality": result["quality"]}, ensure_ascii=False, indent=1), flush=True)
    if args.only != "quality":
        result["latency"] = latency(args.data, args.cases, args.queries, args.engine)
        print(json.dumps({"latency": result["latency"]}, ensure_ascii=False, indent=1), flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"knowledge_{args.engine}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), "utf-8")


if __name__ == "__main__":
    main()
