"""The simulated office at routing's desk (hotline_dev/lifecycle_sim.py ``Player._routing``): it
decides a unit's return once routing's desk holds it. Under load the return reaches routing
minutes after the unit asked (ReturnRequested waits in supervision's outbox, then in routing's
returns consumer): the 1,000-lifecycle benchmark lost ~25 lifecycles when the office gave up
after a fixed 300 s ("has no return waiting for a decision"). These tests drive the player with
a fake routing service and a fake clock, no I/O."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest

from hotline.settings import Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2
from hotline_dev import lifecycle_sim
from hotline_dev.lifecycle_sim import Path, Player

TID = "T-RET-1"


def _refused(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class FakeDesk:
    """Routing's DecideReturn: FAILED_PRECONDITION until the return reaches the desk (after
    ``late`` calls), each call moving the fake clock on by ``step`` seconds."""

    def __init__(self, player: Player, late: int, step: float, on_call: Any = None) -> None:
        self.player, self.late, self.step, self.on_call = player, late, step, on_call
        self.calls: list[routing_pb2.DecideReturnRequest] = []
        self.now = 0.0

    def stub(self, _channel: Any) -> Any:
        desk = self

        class Stub:
            async def DecideReturn(self, request: routing_pb2.DecideReturnRequest, **_: Any,  # noqa: N802
                                   ) -> routing_pb2.PendingReturn:
                desk.calls.append(request)
                desk.now += desk.step
                if desk.on_call is not None:
                    desk.on_call(len(desk.calls))
                if len(desk.calls) <= desk.late:
                    raise _refused(grpc.StatusCode.FAILED_PRECONDITION,
                                   f"ticket {request.ticket_id} has no return waiting for a decision")
                return routing_pb2.PendingReturn(ticket_id=request.ticket_id,
                                                 status=case_pb2.RETURN_STATUS_APPROVED)
        return Stub()


def _player(monkeypatch: pytest.MonkeyPatch, path: Path, late: int, step: float, on_call: Any = None,
            ) -> tuple[Player, FakeDesk]:
    player = Player(cast(Settings, None), {TID: path}, delay=0)
    desk = FakeDesk(player, late, step, on_call)
    player.clock = lambda: desk.now
    monkeypatch.setattr(lifecycle_sim, "time", SimpleNamespace(monotonic=lambda: desk.now))  # the module's clock
    player.channel = cast(Any, object())
    player.routing_channel = cast(Any, object())
    monkeypatch.setattr(player, "_token", lambda *_: "token")
    monkeypatch.setattr(lifecycle_sim.services_pb2_grpc, "RoutingServiceStub", desk.stub)
    real_sleep = asyncio.sleep

    async def no_wait(_seconds: float) -> None:  # the back-off between tries: no real waiting
        await real_sleep(0)
    monkeypatch.setattr(lifecycle_sim.asyncio, "sleep", no_wait)
    return player, desk


def _case(dispatch_round: int = 1) -> events_pb2.Case:
    return events_pb2.Case(ticket_id=TID, dispatch_round=dispatch_round,
                           primary_unit=events_pb2.Unit(unit_id="DP01"))


def test_the_office_waits_for_a_return_that_reaches_routing_after_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    # the return reaches routing's desk 12 tries x 60 s = 12 minutes after the unit asked:
    # the office still decides it (the run lasts an hour), once
    player, desk = _player(monkeypatch, Path.RETURN_REDISPATCHED, late=12, step=60.0)
    player.deadline = 3600.0
    asyncio.run(player._routing(_case(), Path.RETURN_REDISPATCHED))
    assert len(desk.calls) == 13
    assert desk.calls[-1].approved and desk.calls[-1].primary_unit_id == "DP02"
    assert player.stats.commands["DecideReturn"] == 1 and player.stats.routing_decisions == 1
    assert player.stats.refused == [] and player.stats.errors == []


def test_the_office_gives_up_when_the_run_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    player, desk = _player(monkeypatch, Path.RETURN_REFUSED, late=100, step=60.0)
    player.deadline = 600.0
    with pytest.raises(grpc.aio.AioRpcError):
        asyncio.run(player._routing(_case(), Path.RETURN_REFUSED))
    assert len(desk.calls) == 11  # 11 x 60 s > the run's 600 s
    assert player.stats.refused and "no return waiting" in player.stats.refused[0]
    assert player.stats.commands["DecideReturn"] == 0


def test_a_return_routing_refused_itself_needs_no_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    # a return asked after its limit: routing refuses it at once (ReturnRefused, decided by the
    # system), so the office's DecideReturn can never find it waiting; the player stops asking
    # when the refusal comes, and the unit goes on with the case
    handled: list[bool] = []
    player: Player

    def refusal_arrives(calls: int) -> None:
        if calls == 3:
            event = lifecycle_pb2.ReturnRefused(case=_case())
            player._react(event)

    player, desk = _player(monkeypatch, Path.RETURN_REDISPATCHED, late=100, step=1.0, on_call=refusal_arrives)
    player.deadline = 3600.0

    async def handle(case: events_pb2.Case, path: Path, after_return: bool = False) -> None:
        handled.append(after_return)
    monkeypatch.setattr(player, "_handle", handle)

    async def play() -> None:
        await player._routing(_case(), Path.RETURN_REDISPATCHED)
        await asyncio.gather(*player.tasks)
    asyncio.run(play())
    assert len(desk.calls) == 3
    assert handled == [True]  # the unit carries on after the refusal
    assert player.stats.commands["DecideReturn"] == 0
    assert player.stats.refused == [] and player.stats.errors == []


def test_a_round_closed_by_its_re_dispatch_counts_as_decided_not_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    player, _ = _player(monkeypatch, Path.RETURN_REDISPATCHED, late=0, step=1.0)
    player._react(lifecycle_pb2.CaseClosed(case=_case(), closure=case_pb2.CLOSURE_REDISPATCHED))
    assert (TID, 1) in player.returns_decided and TID not in player.stats.closed
    player._react(lifecycle_pb2.CaseClosed(case=_case(2), closure=case_pb2.CLOSURE_SATISFIED))
    assert TID in player.stats.closed
