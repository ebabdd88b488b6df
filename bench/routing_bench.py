"""Speed of routing's decision (Router.decide) with the full responsibility list, one core.

    .venv/bin/python bench/routing_bench.py                 # 20,000 simulated city tickets
    .venv/bin/python bench/routing_bench.py --count 50000

Tickets come from the city simulator (realistic text, addresses from the gazetteer; ~60% carry
the city's category, the rest are decided by keywords, street or manual dispatch). No
classifier: its own figures are in classifier_bench.py. Prints a table and, as its last line,
one JSON object. It asserts nothing. On a shared machine the wall-clock p99 includes the time
other processes held the core; the CPU-time figures do not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotline.v1 import ticket_pb2  # noqa: E402
from hotline_dev import simulator  # noqa: E402
from services.routing.core import Router  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    router = Router.from_files()
    load_ms = (time.perf_counter() - started) * 1000
    tickets = [
        ticket_pb2.Ticket(ticket_id=c.city_ticket_id, title=c.title, content=c.content, address=c.address,
                          street=c.street, category=c.category)
        for c in simulator.generate(args.count, seed=11, start=datetime(2026, 11, 24, 1, tzinfo=UTC))
    ]
    for t in tickets[:500]:  # warm up
        router.decide(t)
    methods: Counter[str] = Counter()
    times, cpu = [], []
    batch_start = time.perf_counter()
    for t in tickets:
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        methods[router.decide(t).method] += 1
        cpu.append(time.process_time_ns() - c0)
        times.append(time.perf_counter_ns() - t0)
    elapsed = time.perf_counter() - batch_start
    times.sort()
    q = statistics.quantiles(times, n=100)
    qc = statistics.quantiles(cpu, n=100)
    result = {
        "items": len(router.rules), "places": len(router.directory.places), "tickets": len(tickets),
        "load_ms": round(load_ms, 1), "decisions_per_s": round(len(tickets) / elapsed),
        "p50_us": round(q[49] / 1000, 1), "p99_us": round(q[98] / 1000, 1), "max_us": round(times[-1] / 1000, 1),
        "cpu_p50_us": round(qc[49] / 1000, 1), "cpu_p99_us": round(qc[98] / 1000, 1),
        "methods": dict(methods), "list_version": router.list_version,
    }
    print(f"{'list items':<28}{result['items']}")
    print(f"{'gazetteer names':<28}{result['places']}")
    print(f"{'decisions/s (one core)':<28}{result['decisions_per_s']:,}")
    print(f"{'p50 / p99 per decision':<28}{result['p50_us']} / {result['p99_us']} µs wall, "
          f"{result['cpu_p50_us']} / {result['cpu_p99_us']} µs CPU (wall includes other processes' turns)")
    print(f"{'methods':<28}{dict(methods)}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
