"""A change's cost, side by side: the same scenarios for a git ref and for the working tree.

    .venv/bin/python bench/compare.py f6f4739                  # or: make bench-compare REF=f6f4739
    .venv/bin/python bench/compare.py main --max-count 3000 --lifecycle-count 200 --rounds 2

The ref is checked out in a temporary worktree (its own venv when its uv.lock differs from the
working tree's); both run on the broker and store already running (never stopped here), in
namespaces of their own, ALTERNATING scenario by scenario (ref, work; the order swaps every
round), so that the machine's load of the moment weighs on both alike. Scenarios (bench/pipeline.py):

* raw: aiokafka pass-through (the same code for both: the ceiling each side's run is a fraction of);
* max: tickets/s end to end, peak RSS; per service: store operations and CPU-ms per ticket;
* rate: latency publish -> case opened at ``--rate-fraction`` of the REF's capacity measured in
  the same round (the same offered rate for both);
* lifecycle: lifecycle commands/s and closures/s (when the ref has the lifecycle API); per
  service: store operations and CPU-ms per lifecycle command (the tickets' pipeline included).

Store operations are counted in each service process by a PyMongo command listener that
``bench/probe/sitecustomize.py`` installs (the store itself, SecantusDB, counts none), so the
ref needs nothing of it. CPU is psutil's user+system time of each process before/after.
It prints a table of each figure with its ratio work/ref and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from google.protobuf import json_format
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402
from pipeline import Namespace, console  # noqa: E402

from hotline_dev import infra  # noqa: E402
from hotline_dev.launcher import settings_for  # noqa: E402
from hotline_dev.simulator import generate  # noqa: E402

PROBE = ROOT / "bench" / "probe"


@dataclass
class Side:
    name: str  # "ref" or "work"
    label: str  # the ref as given, or "working tree"
    root: Path
    python: str
    port_offset: int


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def prepare_ref(ref: str, keep: bool) -> tuple[Path, str, str]:
    """A worktree of ``ref`` and the interpreter to run it with (ours when the locks match)."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    where = Path(tempfile.gettempdir()) / f"hotline-compare-{sha[:12]}"
    if not (where / ".git").exists():
        if where.exists():
            shutil.rmtree(where)
        git("worktree", "prune")
        with console.status(f"checking out {ref} ({sha[:10]}) in {where}…"):
            git("worktree", "add", "--detach", str(where), sha)
    ours = (ROOT / "uv.lock").read_bytes() if (ROOT / "uv.lock").exists() else b""
    theirs = (where / "uv.lock").read_bytes() if (where / "uv.lock").exists() else b""
    python = str(ROOT / ".venv" / "bin" / "python")
    if ours != theirs:
        uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
        with console.status(f"{ref}: its uv.lock differs, creating its venv…"):
            subprocess.run([uv, "sync", "--frozen", "--all-groups", "--quiet"], cwd=where, check=True,
                           env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(where / ".venv")})
        python = str(where / ".venv" / "bin" / "python")
    console.print(f"ref {ref} = {sha[:10]} in {where} ({'own venv' if ours != theirs else 'same lock, our venv'})")
    return where, python, sha


# --------------------------------------------------------------------------- per-process costs


class Costs:
    """CPU times (psutil) and store operations (the probe's files) of a namespace's processes."""

    def __init__(self, ns: Namespace, probe_dir: Path) -> None:
        self.ns = ns
        self.probe_dir = probe_dir
        self.infra = infra_pids(ns)

    def snapshot(self) -> dict[str, Any]:
        cpu: dict[str, float] = defaultdict(float)
        pids: dict[int, str] = {}
        for proc in self.ns.procs:
            if proc.proc and proc.proc.poll() is None:
                try:
                    t = psutil.Process(proc.proc.pid).cpu_times()
                    cpu[proc.name] += t.user + t.system
                    pids[proc.proc.pid] = proc.name
                except psutil.Error:
                    pass
        for name, pid in self.infra.items():
            try:
                t = psutil.Process(pid).cpu_times()
                cpu[f"({name}, shared)"] += t.user + t.system
            except psutil.Error:
                pass
        ops: dict[str, dict[str, list[float]]] = defaultdict(dict)
        for pid, name in pids.items():
            path = self.probe_dir / f"{pid}.json"
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for key, (n, seconds, *more) in data["ops"].items():
                command = ":".join(key.split("|")[1:]).rstrip(":")  # command:collection
                row = ops[name].setdefault(command, [0, 0.0, 0, 0])
                row[0] += n
                row[1] += seconds
                for i, value in enumerate(more[:2]):
                    row[2 + i] += value
        return {"cpu": dict(cpu), "ops": {k: dict(v) for k, v in ops.items()}}

    async def settled(self) -> dict[str, Any]:
        await asyncio.sleep(0.6)  # the probe writes every 0.25 s
        return self.snapshot()


def infra_pids(ns: Namespace) -> dict[str, int]:
    """The broker's and the store's processes, found by the ports they listen on (whoever started them)."""
    ports = {ns.settings.mongo.port: "store",
             int(ns.settings.kafka.bootstrap_servers.rsplit(":", 1)[1]): "kafka"}
    found: dict[str, int] = {}
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports and conn.pid:
                found[ports[conn.laddr.port]] = conn.pid
    except psutil.Error:
        pass
    return found


def per_unit(before: dict[str, Any], after: dict[str, Any], units: int) -> dict[str, Any]:
    """CPU-ms, store operations and store seconds per unit (ticket or command) per service."""
    out: dict[str, Any] = {}
    for name, seconds in after["cpu"].items():
        row = out.setdefault(name, {})
        row["cpu_ms"] = round((seconds - before["cpu"].get(name, 0.0)) * 1000 / units, 3)
    for name, commands in after["ops"].items():
        row = out.setdefault(name, {})
        by_command: dict[str, float] = {}
        detail: dict[str, dict[str, float]] = {}
        total = 0
        store_s = 0.0
        read = written = 0
        for command, (n, seconds, returned, wrote) in commands.items():
            n0, s0, r0, w0 = before["ops"].get(name, {}).get(command, [0, 0.0, 0, 0])
            if n - n0:
                by_command[command] = round((n - n0) / units, 3)
                detail[command] = {"ops": n - n0, "seconds": round(seconds - s0, 3), "documents_read": returned - r0,
                                   "documents_written": wrote - w0}
            total += n - n0
            store_s += seconds - s0
            read += returned - r0
            written += wrote - w0
        row["store_ops"] = round(total / units, 3)
        row["store_ms"] = round(store_s * 1000 / units, 3)
        row["documents_read"] = round(read / units, 3)
        row["documents_written"] = round(written / units, 3)
        row["detail"] = detail
        row["by_command"] = dict(sorted(by_command.items(), key=lambda kv: -kv[1]))
    return out


# --------------------------------------------------------------------------- scenarios


def namespace_for(side: Side, probe_dir: Path) -> Namespace:
    env = {"HOTLINE_BENCH_PROBE": str(probe_dir),
           "PYTHONPATH": os.pathsep.join([str(PROBE), str(side.root)]),
           "HOTLINE_ENV": "development"}
    return Namespace(port_offset=side.port_offset, root=side.root, python=side.python, extra_env=env)


def start_profiles(ns: Namespace, side: Side, scenario: str) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
    """py-spy (collapsed stacks, 50 Hz, without pausing the process) on every service process."""
    spy = ROOT / ".venv" / "bin" / "py-spy"
    out_dir = ROOT / "bench" / "results" / "profiles" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{side.name}-{scenario}"
    out_dir.mkdir(parents=True, exist_ok=True)
    spies = []
    for proc in ns.procs:
        if proc.proc and proc.proc.poll() is None:
            path = out_dir / f"{proc.name}.txt"
            spies.append((proc.name, subprocess.Popen(
                [str(spy), "record", "--pid", str(proc.proc.pid), "--rate", "50", "--nonblocking", "--format", "raw",
                 "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path))
    return spies


def stop_profiles(spies: list[tuple[str, subprocess.Popen[bytes], Path]]) -> dict[str, str]:
    for _, spy, _ in spies:
        spy.send_signal(signal.SIGINT)
    for _, spy, _ in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
    console.print("profiles: " + ", ".join(str(path) for _, _, path in spies))
    return {name: str(path) for name, _, path in spies}


async def run_scenario(side: Side, scenario: str, args: argparse.Namespace, rate: float = 0.0) -> dict[str, Any]:
    if scenario == "raw":
        sample = json_format.MessageToJson(next(generate(1, seed=9)), indent=None).encode()
        with console.status(f"{side.name}: raw Kafka pass-through, {args.max_count:,} messages…"):
            return await pipeline.scenario_raw(settings_for({}), args.max_count, len(sample), 4)
    probe_dir = Path(tempfile.mkdtemp(prefix="hotline-probe-"))
    ns = namespace_for(side, probe_dir)
    try:
        with console.status(f"{side.name}: starting the services ({ns.tag})…"):
            ns.start()
        costs = Costs(ns, probe_dir)
        await asyncio.sleep(2)  # start-up work (indexes, first gauge pass) out of the window
        before = await costs.settled()
        spies = start_profiles(ns, side, scenario) if args.profile and scenario in ("max", "lifecycle") else []
        if scenario == "max":
            result = await pipeline.scenario_max(ns, args.max_count, seed=7)
            units = args.max_count
        elif scenario == "rate":
            with console.status(f"{side.name}: {rate:.0f} tickets/s for {args.rate_seconds} s…"):
                result = await pipeline.scenario_rate(ns, rate, args.rate_seconds)
            units = result["tickets"]
        else:
            result = await pipeline.scenario_lifecycle(ns, args.lifecycle_count, seed=11)
            units = max(1, result["commands"])
        after = await costs.settled()
        if spies:
            result["profiles"] = stop_profiles(spies)
        result["per_unit"] = per_unit(before, after, units)
        result["unit"] = "command" if scenario == "lifecycle" else "ticket"
        return result
    finally:
        with console.status(f"{side.name}: stopping {ns.tag}…"):
            ns.stop()
        shutil.rmtree(probe_dir, ignore_errors=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    infra.start(components=("kafka", "store"), quiet=True)  # reuses the running broker and store
    ref_root, ref_python, sha = prepare_ref(args.ref, args.keep_worktree)
    work_sha = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain"))
    sides = [Side("ref", f"{args.ref} ({sha[:10]})", ref_root, ref_python, args.port_offset),
             Side("work", f"working tree ({work_sha[:10]}{', modified' if dirty else ''})", ROOT,
                  str(ROOT / ".venv" / "bin" / "python"), args.port_offset)]
    has_lifecycle = (ref_root / "hotline_dev" / "lifecycle_sim.py").exists()
    wanted = [s for s in args.scenarios.split(",") if s]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s.name: defaultdict(list) for s in sides}
    started = time.time()
    for round_ in range(args.rounds):
        order = [s for s in (sides if round_ % 2 == 0 else sides[::-1]) if s.name in args.sides.split(",")]
        rate = 0.0
        for scenario in wanted:
            if scenario == "lifecycle" and not has_lifecycle:
                console.print(f"lifecycle: skipped ({args.ref} has no hotline_dev/lifecycle_sim.py)")
                continue
            if scenario == "rate" and args.rate:
                rate = args.rate
            elif scenario == "rate":
                ref_max = [r["tickets_per_second"] for r in runs["ref" if "ref" in args.sides else "work"]["max"]
                           if "tickets_per_second" in r]
                if not ref_max:
                    console.print("rate: needs max in the same run (the rate is a fraction of the ref's capacity)")
                    continue
                rate = round(ref_max[-1] * args.rate_fraction)
            for side in order:
                t0 = time.time()
                try:
                    row = await run_scenario(side, scenario, args, rate)
                except Exception as exc:  # one side failing a scenario still shows the others
                    console.print(f"[red]{side.name} {scenario} failed: {exc!r}[/red]")
                    row = {"error": repr(exc)}
                runs[side.name][scenario].append(row)
                brief = {k: v for k, v in row.items() if k not in ("per_unit", "rss_mb")}
                console.print(f"round {round_ + 1}/{args.rounds} · {scenario} · {side.name}: {brief} "
                              f"({time.time() - t0:.0f} s; {time.time() - started:.0f} s in all)")
    return {"ref": args.ref, "ref_sha": sha, "work_sha": work_sha, "work_modified": dirty,
            "sides": {s.name: s.label for s in sides}, "args": vars(args) | {"ref": args.ref},
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            "load_average": os.getloadavg(), "runs": {k: dict(v) for k, v in runs.items()}}


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    ordered = sorted(v for v in values if v == v)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def figure(result: dict[str, Any], side: str, scenario: str, key: str) -> float:
    return median([r[key] for r in result["runs"][side].get(scenario, []) if key in r])


def ratio(work: float, ref: float) -> str:
    if ref != ref or work != work or not ref:
        return "—"
    return f"{work / ref:.2f}x"


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"


def report(result: dict[str, Any]) -> None:
    console.width = max(console.width, 150)
    console.rule(f"compare · ref {result['sides']['ref']} vs {result['sides']['work']}")
    rows: list[tuple[str, str, str, int]] = [
        ("raw Kafka pass-through (msg/s)", "raw", "pass_through_per_second", 0),
        ("end to end (tickets/s)", "max", "tickets_per_second", 1),
        ("cases opened (tickets/s)", "max", "cases_opened_per_second", 1),
        ("lifecycle commands/s", "lifecycle", "commands_per_second", 1),
        ("closures/s", "lifecycle", "closed_per_second", 1),
        ("publish -> closed p50 (s)", "lifecycle", "closure_p50_s", 1),
    ]
    table = Table("measure", "ref", "work", "work / ref")
    for label, scenario, key, digits in rows:
        ref, work = figure(result, "ref", scenario, key), figure(result, "work", scenario, key)
        if ref == ref or work == work:
            table.add_row(label, fmt(ref, digits), fmt(work, digits), ratio(work, ref))
    for side_ratio in ("pipeline / raw",):
        vals = {}
        for side in ("ref", "work"):
            vals[side] = figure(result, side, "max", "tickets_per_second") / figure(result, side, "raw",
                                                                                    "pass_through_per_second")
        if vals["ref"] == vals["ref"] or vals["work"] == vals["work"]:
            table.add_row(side_ratio, f"{vals['ref']:.1%}" if vals["ref"] == vals["ref"] else "—",
                          f"{vals['work']:.1%}" if vals["work"] == vals["work"] else "—",
                          ratio(vals["work"], vals["ref"]))
    rate_rows = result["runs"]["ref"].get("rate", [])
    if rate_rows and "offered_rate" in rate_rows[0]:
        offered = rate_rows[0]["offered_rate"]
        for q in (50, 95, 99):
            key = f"opened_p{q}_ms"
            ref, work = figure(result, "ref", "rate", key), figure(result, "work", "rate", key)
            table.add_row(f"publish -> case opened p{q} at {offered:.0f}/s (ms)", fmt(ref, 0), fmt(work, 0),
                          ratio(work, ref))
    services = sorted({name for side in ("ref", "work") for r in result["runs"][side].get("max", [])
                       for name in r.get("rss_mb", {})})
    for name in services:
        ref = median([r["rss_mb"][name] for r in result["runs"]["ref"].get("max", []) if name in r.get("rss_mb", {})])
        work = median([r["rss_mb"][name] for r in result["runs"]["work"].get("max", [])
                       if name in r.get("rss_mb", {})])
        table.add_row(f"peak RSS {name} under max (MB)", fmt(ref, 0), fmt(work, 0), ratio(work, ref))
    console.print(table)
    for scenario, unit in (("max", "ticket"), ("lifecycle", "command")):
        names = sorted({n for side in ("ref", "work") for r in result["runs"][side].get(scenario, [])
                        for n in r.get("per_unit", {})})
        if not names:
            continue
        t = Table("service", "round trips ref", "work", "docs written ref", "work", "docs read ref", "work",
                  "CPU-ms ref", "work", "ratio", title=f"store operations and CPU per {unit} ({scenario})")

        def val(side: str, name: str, key: str, scen: str = scenario) -> float:
            return median([r["per_unit"][name][key] for r in result["runs"][side].get(scen, [])
                           if key in r.get("per_unit", {}).get(name, {})])

        details = []
        for name in names:
            t.add_row(name, *(fmt(val(side, name, key), 2) for key in ("store_ops", "documents_written",
                                                                       "documents_read") for side in ("ref", "work")),
                      fmt(val("ref", name, "cpu_ms"), 2), fmt(val("work", name, "cpu_ms"), 2),
                      ratio(val("work", name, "cpu_ms"), val("ref", name, "cpu_ms")))
            for side in ("ref", "work"):
                runs = result["runs"][side].get(scenario, [])
                last = runs[-1].get("per_unit", {}).get(name, {}) if runs else {}
                if last.get("detail"):
                    n = max(1, runs[-1].get("tickets", 0) if unit == "ticket" else runs[-1].get("commands", 0))
                    parts = [f"{cmd} {d['ops'] / n:.3g} rt, {d.get('documents_written', 0) / n:.3g} w, "
                             f"{d['documents_read'] / n:.3g} r"
                             for cmd, d in sorted(last["detail"].items(), key=lambda kv: -kv[1]["ops"])]
                    details.append(f"  {name} [{side}] per {unit}: " + "; ".join(parts))
        console.print(t)
        console.print("\n".join(details), soft_wrap=True)
    console.print(f"load average at the end: {', '.join(f'{x:.1f}' for x in result['load_average'])} "
                  "(the machine is shared: read the ratios, the absolute figures move with the load)")


def markdown(result: dict[str, Any]) -> str:
    """The same figures as Markdown tables (for a change's note and bench/README.md)."""
    def f(side: str, scenario: str, key: str) -> float:
        return figure(result, side, scenario, key)

    out = [f"ref {result['sides']['ref']} vs {result['sides']['work']}", "",
           "| measure | ref | work | work / ref |", "|---|---|---|---|"]
    for label, scenario, key in (("raw Kafka pass-through (msg/s)", "raw", "pass_through_per_second"),
                                 ("end to end (tickets/s)", "max", "tickets_per_second"),
                                 ("cases opened (tickets/s)", "max", "cases_opened_per_second"),
                                 ("lifecycle commands/s", "lifecycle", "commands_per_second"),
                                 ("closures/s", "lifecycle", "closed_per_second")):
        ref, work = f("ref", scenario, key), f("work", scenario, key)
        if ref == ref or work == work:
            out.append(f"| {label} | {fmt(ref)} | {fmt(work)} | {ratio(work, ref)} |")
    pr = {side: f(side, "max", "tickets_per_second") / f(side, "raw", "pass_through_per_second")
          for side in ("ref", "work")}
    if pr["ref"] == pr["ref"] or pr["work"] == pr["work"]:
        out.append(f"| pipeline / raw | {pr['ref']:.1%} | {pr['work']:.1%} | {ratio(pr['work'], pr['ref'])} |")
    rate_rows = result["runs"]["ref"].get("rate", []) or result["runs"]["work"].get("rate", [])
    if rate_rows and "offered_rate" in rate_rows[0]:
        for q in (50, 99):
            ref, work = f("ref", "rate", f"opened_p{q}_ms"), f("work", "rate", f"opened_p{q}_ms")
            out.append(f"| publish -> case opened p{q} at {rate_rows[0]['offered_rate']:.0f}/s (ms) | "
                       f"{fmt(ref, 0)} | {fmt(work, 0)} | {ratio(work, ref)} |")
    for scenario, unit in (("max", "ticket"), ("lifecycle", "command")):
        rows = {side: (result["runs"][side].get(scenario) or [{}])[-1].get("per_unit", {}) for side in ("ref", "work")}
        names = sorted(set(rows["ref"]) | set(rows["work"]))
        if not names:
            continue
        out += ["", f"Per {unit} ({scenario}): store round trips, documents written, documents read, CPU-ms",
                "", "| service | round trips ref / work | written ref / work | read ref / work | CPU-ms ref / work |",
                "|---|---|---|---|---|"]
        for name in names:
            cells = []
            for key, digits in (("store_ops", 2), ("documents_written", 2), ("documents_read", 2), ("cpu_ms", 2)):
                a = rows["ref"].get(name, {}).get(key, float("nan"))
                b = rows["work"].get(name, {}).get(key, float("nan"))
                cells.append(f"{fmt(a, digits)} / {fmt(b, digits)}")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref", help="git ref to compare the working tree with (e.g. f6f4739, main)")
    parser.add_argument("--scenarios", default="raw,max,rate,lifecycle")
    parser.add_argument("--max-count", type=int, default=5000, help="tickets in each max run (and raw messages)")
    parser.add_argument("--rate-fraction", type=float, default=0.5, help="offered rate / the ref's max capacity")
    parser.add_argument("--rate", type=float, default=0,
                        help="a fixed offered rate, tickets/s, instead of the fraction (the same for every round)")
    parser.add_argument("--rate-seconds", type=float, default=10)
    parser.add_argument("--lifecycle-count", type=int, default=300)
    parser.add_argument("--sides", default="ref,work", help="ref,work (or one of them: a profile of one side)")
    parser.add_argument("--profile", action="store_true", help="py-spy every service under max and lifecycle")
    parser.add_argument("--rounds", type=int, default=1, help="alternations (the order swaps every round)")
    parser.add_argument("--port-offset", type=int, default=int(
        os.environ.get("HOTLINE_BENCH_PORT_OFFSET", os.environ.get("HOTLINE_TEST_PORT_OFFSET", 10_000))))
    parser.add_argument("--keep-worktree", action="store_true", help="(the worktree is kept for the next run anyway)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON (default bench/results/)")
    parser.add_argument("--markdown", action="store_true", help="also print the figures as Markdown tables")
    parser.add_argument("--report", type=Path, default=None,
                        help="print the tables of a JSON written before, run nothing")
    cli = parser.parse_args()
    if cli.report:
        earlier = json.loads(cli.report.read_text())
        report(earlier)
        print(markdown(earlier))
        sys.exit(0)
    outcome = asyncio.run(main(cli))
    report(outcome)
    if cli.markdown:
        print(markdown(outcome))
    out = outcome["args"]["json"] or ROOT / "bench" / "results" / f"compare-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    outcome["args"]["json"] = str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(outcome, indent=2, ensure_ascii=False, default=str))
    console.print(f"written {out}")
