"""Cost of supervision levels (督办) and merge suggestions on the real store (no Kafka: the
outbox is staged, not relayed).

    .venv/bin/python bench/supervision_levels_bench.py --cases 300

Creates a throw-away database ``<prefix>_bench_levels_<pid>``, opens ``--cases`` cases, then
times per case a level 2 raise and its close through the kit's command path (one transaction
each: idempotency, load, decide, save with the case's level, outbox, audit), the gauge export
(12 indexed counts: the background recount, no command waits for it), and the merge-suggestion
scoring of one ticket against ``--facts`` ticket facts of its street (pure). Drops the
database. Prints a table and, last, one JSON object. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HOTLINE_ENV", "development")  # benchmarks mint development tokens (issue #19)

from hotline import mongo, pb  # noqa: E402
from hotline.auth import Principal  # noqa: E402
from hotline.calendar import WorkCalendar  # noqa: E402
from hotline.commands import CommandBus  # noqa: E402
from hotline.outbox import Outbox  # noqa: E402
from hotline.policy import Role  # noqa: E402
from hotline.settings import get_settings  # noqa: E402
from hotline.v1 import events_pb2  # noqa: E402
from hotline.v1 import supervision_pb2 as sv  # noqa: E402
from services.supervision.cases.lifecycle import PeriodDeadlines  # noqa: E402
from services.supervision.levels import escalation as esc  # noqa: E402
from services.supervision.levels import merging  # noqa: E402
from services.supervision.levels.escalation_store import INDEXES, EscalationCommands  # noqa: E402
from services.supervision.warnings.warnings import Fact  # noqa: E402

OFFICE = Principal("bench-office", Role.OFFICE)
TEXTS = ["门口占道经营堵塞交通", "夜间施工噪音扰民", "小区垃圾清运不及时", "路灯不亮存在安全隐患", "楼上漏水无人处理"]


def ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2)}


async def run(cases: int, facts: int) -> dict[str, Any]:
    settings = get_settings()
    tz = ZoneInfo(settings.timezone)
    client = mongo.client(settings)
    name = f"{settings.mongo.database_prefix}_bench_levels_{os.getpid()}"
    db = client[name]
    try:
        for collection, models in INDEXES.items():
            await db[collection].create_indexes(list(models))
        now = datetime.now(UTC)
        await db["cases"].insert_many([{"_id": f"B{i:06d}", **pb.to_doc(events_pb2.Case(
            ticket_id=f"B{i:06d}", state=events_pb2.CASE_STATE_IN_PROGRESS,
            primary_unit=events_pb2.Unit(unit_id="DP01")))} for i in range(cases)])
        bus = CommandBus(client, db, Outbox(db, None, "bench"), "bench")  # type: ignore[arg-type]
        rules = esc.Rules.load(PeriodDeadlines(WorkCalendar()), tz)
        commands = EscalationCommands(bus, db, rules, _Clock(), "bench.cases", lambda _: None)
        raise_s, close_s = [], []
        for i in range(cases):
            tid = f"B{i:06d}"
            t0 = time.perf_counter()
            await commands.run("raise_supervision", sv.RaiseSupervisionRequest(ticket_id=tid, level=2, reason="督办"),
                               OFFICE, f"r{i}")
            t1 = time.perf_counter()
            await commands.run("close_supervision", sv.CloseSupervisionRequest(
                ticket_id=tid, level=2, resolved=i % 3 != 0, outcome="已办结"), OFFICE, f"c{i}")
            raise_s.append(t1 - t0)
            close_s.append(time.perf_counter() - t1)
        export_s = []  # the background recount (commands do not wait for it)
        for _ in range(20):
            t0 = time.perf_counter()
            await commands.export()
            export_s.append(time.perf_counter() - t0)
        street = [Fact(f"F{i}", now - timedelta(hours=i % 150), "ST01", "市容", f"中华路{i % 40}号", "",
                       TEXTS[i % len(TEXTS)] + f"，第{i}次") for i in range(facts)]
        t0 = time.perf_counter()
        found = merging.suggest(street[0], street)
        suggest_s = time.perf_counter() - t0
        return {"cases": cases, "raise": ms(raise_s), "close": ms(close_s), "export": ms(export_s),
                "suggest_facts": facts, "suggest_ms": round(suggest_s * 1000, 2), "suggested": len(found)}
    finally:
        await client.drop_database(name)
        await client.close()


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--facts", type=int, default=5000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.cases, args.facts))
    print(f"{'operation':<28}{'p50 ms':>10}{'p95 ms':>10}")
    for op in ("raise", "close", "export"):
        label = f"{op} ({figures['cases']} cases)"
        print(f"{label:<28}{figures[op]['p50_ms']:>10}{figures[op]['p95_ms']:>10}")
    print(f"suggest over {figures['suggest_facts']} facts: {figures['suggest_ms']} ms, {figures['suggested']} found")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
