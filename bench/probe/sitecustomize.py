"""Store-operation probe for benchmarks (bench/compare.py): loaded by every Python process
started with ``bench/probe`` on PYTHONPATH and HOTLINE_BENCH_PROBE set to a directory.

It registers a global PyMongo command listener (every client the process creates afterwards,
async or not, reports to it) that counts each command sent to the store by database and
command name, with the time it took, and writes the counts to ``<dir>/<pid>.json`` every
0.25 s. It changes nothing in the code it observes: the same probe counts any git ref's services,
so a comparison needs nothing from the ref.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

_DIR = os.environ.get("HOTLINE_BENCH_PROBE", "")


def _install(directory: str) -> None:
    from pymongo import monitoring

    # "db|command|collection" -> [count, seconds, documents returned, documents written]
    counts: dict[str, list[float]] = {}
    pending: dict[int, tuple[str, int]] = {}  # request id -> collection, documents it writes
    lock = threading.Lock()

    class Listener(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            command = event.command
            target = command.get(event.command_name)
            written = 0
            for field in ("documents", "updates", "deletes", "ops"):  # insert, update, delete, bulkWrite
                if isinstance(command.get(field), list):
                    written += len(command[field])
            if event.command_name == "findAndModify":
                written = 1
            pending[event.request_id] = (target if isinstance(target, str) else "", written)

        def _done(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
            if event.command_name in ("hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo"):
                return
            collection, written = pending.pop(event.request_id, ("", 0))
            key = f"{event.database_name}|{event.command_name}|{collection}"
            returned = 0
            reply = getattr(event, "reply", None)
            if reply and isinstance(reply.get("cursor"), dict):
                cursor = reply["cursor"]
                returned = len(cursor.get("firstBatch", cursor.get("nextBatch", ())))
            with lock:
                row = counts.setdefault(key, [0, 0.0, 0, 0])
                row[0] += 1
                row[1] += event.duration_micros / 1e6
                row[2] += returned
                row[3] += written

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            self._done(event)

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            self._done(event)

    monitoring.register(Listener())
    path = os.path.join(directory, f"{os.getpid()}.json")
    argv = " ".join(sys.argv)

    def dump() -> None:
        while True:
            time.sleep(0.25)
            with lock:
                snapshot = {k: list(v) for k, v in counts.items()}
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"pid": os.getpid(), "argv": argv, "at": time.time(), "ops": snapshot}, f)
            os.replace(tmp, path)

    threading.Thread(target=dump, name="bench-probe", daemon=True).start()


if _DIR:
    try:
        _install(_DIR)
    except Exception as exc:  # a probe must never stop the process it observes
        print(f"bench probe not installed: {exc!r}", file=sys.stderr)
