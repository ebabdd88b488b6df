"""Speed of the ticket classifier on one CPU core: batch throughput and single-ticket latency.

    .venv/bin/python bench/classifier_bench.py --model models/classifier
    .venv/bin/python bench/classifier_bench.py --model DIR --data FILE.csv --text-columns 留言主题,留言详情

Texts come from --data (real tickets, repeated as needed) or, without it, are synthetic
(random characters of the model's own alphabet, ~400 characters like a real message).
Model loading is timed separately and excluded from the figures. BLAS is held to one
thread. Prints a table and, as its last line, one JSON object. It asserts nothing.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.routing.classifier.data import load_examples, split_columns  # noqa: E402
from services.routing.classifier.label_map import LabelMap  # noqa: E402
from services.routing.classifier.model import load_model  # noqa: E402


def synthetic(model_chars: np.ndarray, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = [chr(c) for c in np.flatnonzero(model_chars)] or list("市民反映小区噪音问题")
    out = []
    for _ in range(n):
        title = "".join(rng.choice(alphabet, size=int(rng.integers(10, 30))))
        body = "".join(rng.choice(alphabet, size=int(rng.integers(150, 700))))
        out.append(f"{title}\n{body}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=None, help="CSV/XLSX of tickets to use as texts")
    ap.add_argument("--text-columns", default="留言主题,留言详情")
    ap.add_argument("--batch", type=int, default=1000, help="tickets per predict_batch call (default 1000)")
    ap.add_argument("--docs", type=int, default=20000, help="tickets for the throughput run (default 20000)")
    ap.add_argument("--singles", type=int, default=3000, help="one-ticket calls for latency (default 3000)")
    args = ap.parse_args()

    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

        threadpool_limits(1)
    except ImportError:
        pass

    t0 = time.perf_counter()
    model = load_model(args.model)
    load_s = time.perf_counter() - t0
    if args.data:
        texts = load_examples(args.data, split_columns(args.text_columns), None).texts
        source = str(args.data)
    else:
        texts = synthetic(model.body.char_ids, 2000)
        source = "synthetic"
    mean_chars = float(np.mean([len(t) for t in texts]))
    pool = (texts * (args.docs // len(texts) + 1))[: args.docs]

    model.predict_batch(pool[: args.batch])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(pool), args.batch):
        model.predict_batch(pool[i:i + args.batch])
    batch_s = time.perf_counter() - t0
    docs_per_s = len(pool) / batch_s

    # what routing does per classified ticket: prediction, then the label map (with its refinements)
    label_map = LabelMap.load()
    t0 = time.perf_counter()
    for i in range(0, len(pool), args.batch):
        chunk = pool[i:i + args.batch]
        for p, t in zip(model.predict_batch(chunk), chunk, strict=True):
            label_map.category(p.label, t)
    routed_per_s = len(pool) / (time.perf_counter() - t0)

    singles = (texts * (args.singles // len(texts) + 1))[: args.singles]
    for t in singles[:50]:
        model.predict_batch([t])
    lat = np.empty(len(singles))
    for i, t in enumerate(singles):
        s = time.perf_counter()
        model.predict_batch([t])
        lat[i] = time.perf_counter() - s
    lat_ms = lat * 1000
    p50, p90, p99, worst = np.percentile(lat_ms, [50, 90, 99, 100])

    size = sum(f.stat().st_size for f in args.model.iterdir() if f.is_file())
    print(f"model            {args.model} ({model.model_version}), {size / 1e6:.2f} MB, "
          f"loaded in {load_s * 1000:.0f} ms")
    print(f"texts            {source}: {len(texts)} distinct, mean {mean_chars:.0f} characters")
    print(f"batch            {docs_per_s:,.0f} tickets/s ({len(pool)} tickets in batches of {args.batch}, one core)")
    print(f"with label map   {routed_per_s:,.0f} tickets/s (prediction + category of the list, "
          f"label map {label_map.version})")
    print(f"single ticket    p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms "
          f"({len(singles)} calls)")
    print(json.dumps({"docs_per_second": round(docs_per_s, 1), "with_label_map_per_second": round(routed_per_s, 1),
                      "batch": args.batch, "p50_ms": round(p50, 3),
                      "p90_ms": round(p90, 3), "p99_ms": round(p99, 3), "max_ms": round(worst, 3),
                      "load_ms": round(load_s * 1000, 1), "model_bytes": size, "mean_chars": round(mean_chars, 1),
                      "model_version": model.model_version, "texts": source}, ensure_ascii=False))


if __name__ == "__main__":
    main()
