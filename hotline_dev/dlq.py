"""``hotline dlq list|show|replay``: inspect dead letters and replay them after a fix.

Every consumer sends input it cannot handle to the dead-letter topic (``settings.topics.dead_letters``)
with the original key, value and headers plus ``dlq_reason``, ``dlq_detail``,
``dlq_original_topic``/``_partition``/``_offset`` and ``dlq_service`` (hotline/kafka.py). A dead
letter is named by its place in that topic, ``PARTITION:OFFSET`` (a bare ``OFFSET`` is accepted
when only one partition has it).

* ``list``   dead letters with their reason, service, time and whether they were replayed, and a
  count by reason and service; filters: ``--reason``, ``--service``, ``--topic`` (original topic),
  ``--key``, ``--since``/``--until`` (``2h``, ``30m``, ``1d`` or an ISO time), ``--replayed``/``--pending``.
* ``show``   one dead letter: its headers and a preview of its value. Personal data is masked
  (``13812345678`` -> ``138****5678``, callers' names): the topic keeps original bytes and is sensitive.
* ``replay`` selected dead letters (ids or filters) back to their original topic, typically after a
  fixed service was deployed. Each replayed record keeps the original key, value and headers and
  gets the header ``replayed_from: <dead-letter topic>:<partition>:<offset>``. In the same Kafka
  transaction a marker keyed by the dead letter's id goes to ``settings.topics.dead_letter_replays``;
  replay reads those markers first (after fencing any other replay with the same transactional id),
  so running it again, or after a crash, republishes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from hotline import privacy
from hotline.settings import Settings, get_settings

REPLAYED_FROM = "replayed_from"  # header of a replayed record: "<dead-letter topic>:<partition>:<offset>"
_FETCH_BYTES = 8 * 1024 * 1024  # a dead letter may be an oversize record

# --------------------------------------------------------------------------------------------
# pure parts: the dead letter, selection, masking


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return ""

    @property
    def reason(self) -> str:
        return self.header("dlq_reason")

    @property
    def service(self) -> str:
        return self.header("dlq_service")

    @property
    def original_topic(self) -> str:
        return self.header("dlq_original_topic")

    @property
    def original_place(self) -> str:
        return f"{self.header('dlq_original_partition')}:{self.header('dlq_original_offset')}"

    @property
    def key_text(self) -> str:
        return (self.key or b"").decode("utf-8", "replace")

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def replay_headers(self, dead_letter_topic: str) -> list[tuple[str, bytes]]:
        """The original headers (none of the dead-letter ones) plus where the replay came from."""
        kept = [(k, v) for k, v in self.headers if not k.startswith("dlq_") and k != REPLAYED_FROM]
        return [*kept, (REPLAYED_FROM, f"{dead_letter_topic}:{self.id}".encode())]


def parse_id(text: str) -> tuple[int | None, int]:
    """``"2:17"`` -> (2, 17); ``"17"`` -> (None, 17)."""
    m = re.fullmatch(r"\s*(?:(\d+)\s*:\s*)?(\d+)\s*", text)
    if not m:
        raise ValueError(f"not a dead-letter id (PARTITION:OFFSET or OFFSET): {text!r}")
    return (int(m.group(1)) if m.group(1) is not None else None), int(m.group(2))


def parse_time(text: str, now: datetime) -> datetime:
    """``30m``, ``2h``, ``1d``, ``45s`` before ``now``, or an ISO time (naive = UTC)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return now - timedelta(**{unit: float(m.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use 30m, 2h, 1d or an ISO time)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command is about; empty fields do not filter."""

    ids: tuple[str, ...] = ()
    reasons: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()  # original topics
    key: str = ""
    since: datetime | None = None
    until: datetime | None = None
    replayed: bool | None = None  # True: only replayed ones, False: only not yet replayed

    @property
    def empty(self) -> bool:
        return self == Selection()

    def matches(self, dl: DeadLetter, replayed: bool = False) -> bool:
        if self.ids and not any(_id_matches(i, dl) for i in self.ids):
            return False
        return (
            (not self.reasons or dl.reason in self.reasons)
            and (not self.services or dl.service in self.services)
            and (not self.topics or dl.original_topic in self.topics)
            and (not self.key or dl.key_text == self.key)
            and (self.since is None or dl.at >= self.since)
            and (self.until is None or dl.at <= self.until)
            and (self.replayed is None or replayed == self.replayed)
        )

    def select(self, letters: Iterable[DeadLetter], replayed: Iterable[str] = ()) -> list[DeadLetter]:
        """The matching dead letters. Raises ValueError for an id that matches none, or a bare
        offset that matches several partitions."""
        done = set(replayed)
        letters = list(letters)
        for i in self.ids:
            hits = [dl.id for dl in letters if _id_matches(i, dl)]
            if not hits:
                raise ValueError(f"no dead letter {i}")
            if len(hits) > 1:
                raise ValueError(f"{i} is ambiguous: {', '.join(hits)}; give PARTITION:OFFSET")
        return [dl for dl in letters if self.matches(dl, dl.id in done)]


def _id_matches(text: str, dl: DeadLetter) -> bool:
    partition, offset = parse_id(text)
    return dl.offset == offset and (partition is None or dl.partition == partition)


# Callers' names in JSON values (phone numbers are masked wherever they are, by hotline.privacy)
_NAME_FIELD = re.compile(r'("(?:name|callerName|caller_name)"\s*:\s*")([^"\\]{1,40})(")')


def mask(text: str) -> str:
    """Personal data out of text shown to operators: phone numbers and callers' names."""
    text = privacy.mask_text(text)
    return _NAME_FIELD.sub(lambda m: m.group(1) + privacy.mask_name(m.group(2)) + m.group(3), text)


def preview(value: bytes, limit: int = 2000) -> str:
    """The value as an operator may see it: text (pretty JSON when it parses), masked; binary
    bytes escaped; at most ``limit`` characters."""
    text = mask(value.decode("utf-8", "backslashreplace"))  # before escaping: \x03 + 138... stays a number
    try:
        text = mask(json.dumps(json.loads(text), ensure_ascii=False, indent=2))
    except ValueError:
        text = "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def counts(letters: Iterable[DeadLetter]) -> Counter[tuple[str, str]]:
    """Dead letters by (reason, service)."""
    return Counter((dl.reason, dl.service) for dl in letters)


# --------------------------------------------------------------------------------------------
# Kafka: reading the dead-letter and marker topics, replaying


async def _read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its current end (read_committed), in partition order."""
    from aiokafka import TopicPartition

    from hotline import kafka

    consumer = kafka.consumer(settings, enable_auto_commit=False, isolation_level="read_committed",
                              max_partition_fetch_bytes=_FETCH_BYTES, fetch_max_bytes=_FETCH_BYTES)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []
        idle = 0

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while idle < 3 and await behind():
            batch = await consumer.getmany(*tps, timeout_ms=500)
            got = [m for tp in tps for m in batch.get(tp, []) if m.offset < end[tp]]
            idle = 0 if batch else idle + 1  # transaction markers take offsets but yield no record
            out += got
        return sorted(out, key=lambda m: (m.partition, m.offset))
    finally:
        await consumer.stop()


def _to_dead_letter(msg: Any) -> DeadLetter:
    return DeadLetter(msg.partition, msg.offset, msg.timestamp, msg.key, msg.value or b"",
                      tuple((k, v or b"") for k, v in (msg.headers or ())))


async def read_dead_letters(settings: Settings) -> list[DeadLetter]:
    return [_to_dead_letter(m) for m in await _read_topic(settings, settings.topics.name("dead_letters"))]


async def read_replays(settings: Settings) -> dict[str, dict[str, Any]]:
    """Dead-letter id -> its replay marker (what was replayed, when, to which topic)."""
    out: dict[str, dict[str, Any]] = {}
    for m in await _read_topic(settings, settings.topics.name("dead_letter_replays")):
        if m.key:
            out[m.key.decode()] = json.loads(m.value or b"{}")
    return out


@dataclass
class ReplayResult:
    replayed: list[str] = field(default_factory=list)  # dead-letter ids published now
    already: list[str] = field(default_factory=list)  # replayed before: nothing published


def _marker(dl: DeadLetter, dead_letter_topic: str, now: datetime) -> bytes:
    return json.dumps({
        "dead_letter": f"{dead_letter_topic}:{dl.id}", "original_topic": dl.original_topic,
        "original": dl.original_place, "reason": dl.reason, "service": dl.service, "key": dl.key_text,
        "replayed_at": now.isoformat(timespec="milliseconds"),
    }, ensure_ascii=False).encode()


async def plan(settings: Settings, selection: Selection) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(to replay, replayed before) among the selected dead letters."""
    done = await read_replays(settings)
    letters = selection.select(await read_dead_letters(settings), done)
    return ([dl for dl in letters if dl.id not in done and dl.original_topic],
            [dl for dl in letters if dl.id in done])


async def replay(
    settings: Settings, selection: Selection, *, progress: bool = True, chunk: int = 200,
    console: Console | None = None,
) -> ReplayResult:
    """Publish the selected dead letters to their original topics, each at most once ever."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hotline import kafka
    from hotline.topics import aensure_topics

    dlq_topic = settings.topics.name("dead_letters")
    await aensure_topics(settings, ["dead_letter_replays"])
    marker_topic = settings.topics.name("dead_letter_replays")
    # One transactional id per dead-letter topic: a second replay running at the same time fences
    # this one (its transaction aborts), and markers are read only after the previous one is fenced.
    producer = kafka.producer(settings, transactional_id=f"{settings.topics.prefix}hotline-dlq-replay")
    await producer.start()
    try:
        todo, before = await plan(settings, selection)
        result = ReplayResult(already=[dl.id for dl in before])
        bar = Progress(TextColumn("[bold]replay[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=console or Console(stderr=True), disable=not progress)
        with bar:
            task = bar.add_task(f"{dlq_topic} → original topics", total=len(todo))
            for start in range(0, len(todo), chunk):
                part = todo[start:start + chunk]
                now = datetime.now(UTC)
                async with producer.transaction():
                    for dl in part:
                        await producer.send(dl.original_topic, dl.value, key=dl.key,
                                            headers=dl.replay_headers(dlq_topic))
                        await producer.send(marker_topic, _marker(dl, dlq_topic, now), key=dl.id.encode())
                result.replayed += [dl.id for dl in part]
                bar.advance(task, len(part))
        return result
    finally:
        await producer.stop()


# --------------------------------------------------------------------------------------------
# CLI


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlq", help="dead letters: list, show (personal data masked), replay after a fix",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="dlq_command", required=True)

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", action="append", default=[], help="dlq_reason (repeatable, or a,b)")
        p.add_argument("--service", action="append", default=[], help="service that dead-lettered it")
        p.add_argument("--topic", action="append", default=[], help="original topic (full name)")
        p.add_argument("--key", default="", help="record key (ticket id)")
        p.add_argument("--since", help="dead-lettered at or after: 30m, 2h, 1d or an ISO time")
        p.add_argument("--until", help="dead-lettered at or before: 30m, 2h, 1d or an ISO time")

    p = sub.add_parser("list", help="dead letters with reason, service, time; counts by reason and service")
    filters(p)
    state = p.add_mutually_exclusive_group()
    state.add_argument("--replayed", dest="replayed", action="store_true", default=None, help="only replayed ones")
    state.add_argument("--pending", dest="replayed", action="store_false", help="only those not replayed yet")
    p.add_argument("--limit", type=int, default=200, help="rows shown (newest last; default 200)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(func=_cli)

    p = sub.add_parser("show", help="one dead letter: headers and value preview, personal data masked")
    p.add_argument("id", help="PARTITION:OFFSET (or OFFSET)")
    p.set_defaults(func=_cli)

    p = sub.add_parser("replay", help="publish selected dead letters to their original topics, once each")
    p.add_argument("ids", nargs="*", metavar="ID", help="PARTITION:OFFSET (or OFFSET) of dead letters")
    filters(p)
    p.add_argument("--all", action="store_true", help="every dead letter not replayed yet (no selection needed)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=_cli)
    return parser


def _split(values: Sequence[str]) -> frozenset[str]:
    return frozenset(v.strip() for value in values for v in value.split(",") if v.strip())


def selection_from(args: argparse.Namespace, now: datetime) -> Selection:
    return Selection(
        ids=tuple(getattr(args, "ids", ()) or ()),
        reasons=_split(args.reason), services=_split(args.service), topics=_split(args.topic), key=args.key,
        since=parse_time(args.since, now) if args.since else None,
        until=parse_time(args.until, now) if args.until else None,
        replayed=getattr(args, "replayed", None),
    )


def _cli(args: argparse.Namespace) -> int:
    settings = get_settings()
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        if args.dlq_command == "list":
            return asyncio.run(_list(settings, selection_from(args, datetime.now(UTC)), args, out))
        if args.dlq_command == "show":
            return asyncio.run(_show(settings, args.id, out))
        return _replay(settings, args, err)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2


async def _list(settings: Settings, selection: Selection, args: argparse.Namespace, out: Console) -> int:
    letters, done = await asyncio.gather(read_dead_letters(settings), read_replays(settings))
    chosen = sorted(selection.select(letters, done), key=lambda dl: (dl.timestamp_ms, dl.partition, dl.offset))
    tz = ZoneInfo(settings.timezone)
    if args.json:
        for dl in chosen:
            print(json.dumps({
                "id": dl.id, "at": dl.at.isoformat(timespec="milliseconds"), "service": dl.service,
                "reason": dl.reason, "original_topic": dl.original_topic, "original": dl.original_place,
                "key": dl.key_text, "bytes": len(dl.value), "detail": mask(dl.header("dlq_detail")),
                "replayed": dl.id in done,
            }, ensure_ascii=False))
        return 0
    table = Table(title=f"{len(chosen)} of {len(letters)} dead letters in {settings.topics.name('dead_letters')}"
                  + (f" (last {args.limit} shown)" if len(chosen) > args.limit else ""))
    for col in ("id", "dead-lettered", "service", "reason", "original", "key", "bytes", "detail", "replayed"):
        table.add_column(col, overflow="fold")
    for dl in chosen[-args.limit:] if args.limit > 0 else chosen:
        table.add_row(dl.id, dl.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), dl.service, dl.reason,
                      f"{dl.original_topic} {dl.original_place}", dl.key_text, str(len(dl.value)),
                      mask(dl.header("dlq_detail"))[:80], "yes" if dl.id in done else "")
    out.print(table)
    summary = Table(title="by reason and service")
    for col in ("reason", "service", "dead letters", "replayed"):
        summary.add_column(col)
    replayed = counts(dl for dl in chosen if dl.id in done)
    for (reason, service), n in sorted(counts(chosen).items()):
        summary.add_row(reason, service, str(n), str(replayed[(reason, service)]))
    out.print(summary)
    return 0


async def _show(settings: Settings, dl_id: str, out: Console) -> int:
    letters, done = await asyncio.gather(read_dead_letters(settings), read_replays(settings))
    (dl,) = Selection(ids=(dl_id,)).select(letters)
    table = Table(title=f"dead letter {dl.id} of {settings.topics.name('dead_letters')}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("dead-lettered at", dl.at.astimezone(ZoneInfo(settings.timezone)).isoformat(timespec="seconds"))
    table.add_row("key", dl.key_text)
    table.add_row("bytes", str(len(dl.value)))
    for k, v in dl.headers:
        table.add_row(k, mask(v.decode("utf-8", "replace")))
    marker = done.get(dl.id)
    table.add_row("replayed", f"at {marker.get('replayed_at')} to {marker.get('original_topic')}" if marker else "no")
    out.print(table)
    out.print("[bold]value[/] (personal data masked):")
    out.print(preview(dl.value), markup=False)
    return 0


def _replay(settings: Settings, args: argparse.Namespace, err: Console) -> int:
    selection = selection_from(args, datetime.now(UTC))
    if selection.empty and not args.all:
        raise ValueError("choose dead letters: ids, filters (--reason, --service, --topic, --key, --since, "
                         "--until) or --all")
    todo, before = asyncio.run(plan(settings, selection))
    if args.dry_run or not todo:
        verb = "would replay" if todo else "nothing to replay:"
        err.print(f"{verb} {len(todo)} dead letters; {len(before)} selected were replayed before")
        print(json.dumps({"replayed": [], "would_replay": [dl.id for dl in todo], "already": [dl.id for dl in before]}))
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValueError(f"{len(todo)} dead letters would be replayed; confirm with --yes")
        answer = input(f"Replay {len(todo)} dead letters to their original topics? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    result = asyncio.run(replay(settings, selection, console=err))
    err.print(f"replayed {len(result.replayed)} dead letters; {len(result.already)} selected were replayed before "
              "(nothing published for them)")
    print(json.dumps({"replayed": result.replayed, "would_replay": [], "already": result.already}))
    return 0
