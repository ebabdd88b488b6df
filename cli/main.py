"""The ``hotline`` command: one entry point for running, operating and testing the platform.

    hotline run                      infrastructure + all five services, foreground, Ctrl-C stops
    hotline serve SERVICE            one service (what `run`, docker-compose and tests start)
    hotline infra start|stop|status  local Kafka, MongoDB-wire store and Prometheus
    hotline simulate --count N       publish realistic city tickets
    hotline dlq list|show|replay     dead letters: inspect, replay after a fix
    hotline classify train|evaluate|predict
    hotline report weekly|monthly|half_yearly|annual --period 2026-W47|2026-11|2026-H1|2026 --out DIR
        [--simulate] [--store]
    hotline token issue --role ROLE [--unit ID | --deputy ID | --officer ID] [--ttl MINUTES]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable
from typing import Any

from hotline.policy import Role
from hotline.settings import SERVICES


def _optional(module: str) -> Callable[[Any], None] | None:
    try:
        return importlib.import_module(module).add_cli  # type: ignore[no-any-return]
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def serve(service: str) -> None:
    from hotline.security import check_startup
    from hotline.settings import get_settings

    check_startup(get_settings(), service)  # production without real secrets: exit 2, naming them
    if service == "workbench":  # the web application: no consumers, no gRPC server of its own
        from services.workbench.main import serve as serve_workbench

        serve_workbench()
        return
    module = importlib.import_module(f"services.{service}.main")
    from hotline import runtime

    asyncio.run(runtime.run(module.NAME, module.build))


def issue_token(args: argparse.Namespace) -> int:
    from hotline.auth import issue
    from hotline.policy import SCOPE_CLAIM
    from hotline.settings import get_settings

    settings = get_settings()
    if not settings.development:
        print("hotline token issue: refused - development tokens exist only with HOTLINE_ENV=development; "
              "in production sign in through the identity provider", file=sys.stderr)
        return 2
    role = Role(args.role)
    scope = {"unit_id": args.unit, "deputy_id": args.deputy, "officer_id": args.officer}
    if (claim := SCOPE_CLAIM.get(role)) and not scope[claim]:
        print(f"a {role} token needs --{claim.removesuffix('_id')}", file=sys.stderr)
        return 2
    print(issue(settings.auth, role, subject=args.subject, ttl_minutes=args.ttl, **scope))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="District 12345 hotline platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run one service in the foreground")
    p.add_argument("service", choices=(*SERVICES, "workbench"))
    p.set_defaults(func=lambda a: serve(a.service))

    p = sub.add_parser("token", help="development tokens (signed with HOTLINE_AUTH__DEV_SECRET)")
    token = p.add_subparsers(dest="token_command", required=True)
    t = token.add_parser("issue", help="print a bearer JWT for local use and tests")
    t.add_argument("--role", required=True, choices=[r.value for r in Role if r != Role.SYSTEM])
    t.add_argument("--unit", default="", help="unit id (role unit)")
    t.add_argument("--deputy", default="", help="deputy id (role deputy)")
    t.add_argument("--officer", default="", help="liaison officer id (role liaison)")
    t.add_argument("--subject", default="", help="token subject (default: role:id)")
    t.add_argument("--ttl", type=float, default=None, help="minutes of validity (default from settings)")
    t.set_defaults(func=issue_token)

    # hotline_dev (local infrastructure, launcher, simulator) is absent from the service image
    dev = ("hotline_dev.launcher", "hotline_dev.infra", "hotline_dev.simulator", "hotline_dev.dlq")
    for module in (*dev, "services.routing.classifier.cli", "services.metrics.cli"):
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
