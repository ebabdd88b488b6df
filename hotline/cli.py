"""The ``hotline`` command: one entry point for running, operating and testing the platform.

    hotline run                      infrastructure + all five services, foreground, Ctrl-C stops
    hotline serve SERVICE            one service (what `run`, docker-compose and tests start)
    hotline infra start|stop|status  local Kafka, MongoDB-wire store and Prometheus
    hotline simulate --count N       publish realistic city tickets
    hotline dlq list|show|replay     dead letters: inspect, replay after a fix
    hotline classify train|evaluate|predict
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable
from typing import Any

from hotline.settings import SERVICES


def _optional(module: str) -> Callable[[Any], None] | None:
    try:
        return importlib.import_module(module).add_cli  # type: ignore[no-any-return]
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def serve(service: str) -> None:
    module = importlib.import_module(f"services.{service}.main")
    from hotline import runtime

    asyncio.run(runtime.run(module.NAME, module.build))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="District 12345 hotline platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run one service in the foreground")
    p.add_argument("service", choices=SERVICES)
    p.set_defaults(func=lambda a: serve(a.service))

    # hotline_dev (local infrastructure, launcher, simulator) is absent from the service image
    dev = ("hotline_dev.launcher", "hotline_dev.infra", "hotline_dev.simulator", "hotline_dev.dlq")
    for module in (*dev, "services.routing.classifier.cli"):
        add = _optional(module)
        if add:
            add(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        result = 130
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
