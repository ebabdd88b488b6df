"""End to end (issue #22): a department's whistle (吹哨) and a level-2 督办 raised and settled through
supervision's API reach metrics from the events supervision emits, and GetKpis counts them with
their on-time and resolution figures (per whistling unit type, per level)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hotline.settings import Settings
from hotline.v1 import kpis_pb2, services_pb2_grpc
from tests.e2e.test_supervision_levels import base, open_cases, post
from tests.support import channel, eventually, http

pytestmark = pytest.mark.e2e
TZ = ZoneInfo("Asia/Shanghai")


async def figures(settings: Settings) -> dict[str, tuple[int, int, int, int, int]]:
    """"level/2" and "whistle/department" -> (count, on time, on-time denominator, resolved, settled)."""
    today = datetime.now(TZ).date().isoformat()
    async with channel(settings, "metrics") as chan:
        result = await services_pb2_grpc.MetricsServiceStub(chan).GetKpis(kpis_pb2.GetKpisRequest(period=today))
    out = {}
    for kind, rows in (("level", result.supervision_levels), ("whistle", result.whistles)):
        for r in rows:
            key = next(iter(r.key.values()), "all")
            out[f"{kind}/{key}"] = (r.count, int(r.on_time.numerator), r.on_time.denominator,
                                    int(r.resolution.numerator), r.resolution.denominator)
    return out


async def test_a_whistle_and_a_level_two_supervision_show_up_in_get_kpis(platform: dict, settings: Settings) -> None:
    before = await eventually(lambda: figures(settings), lambda f: "level/2" in f and "whistle/department" in f,
                              timeout=60)
    (case,) = await open_cases(settings, 2201, 1)
    tid = case.ticket_id
    url = f"{base(settings)}/cases/{tid}/supervision"
    async with http(settings, "office") as office, http(settings, "unit", unit_id="DP01") as dp01, \
            http(settings, "unit", unit_id="DP02") as dp02:
        got = await post(office, url, {"level": 2, "reason": "逾期未反馈"}, f"{tid}/l2")
        assert got["level"] == 2
        w = await post(dp01, f"{base(settings)}/whistles", {"problem": "执法协同", "ticket_id": tid,
                                                            "unit_ids": ["DP02"]}, f"{tid}/whistle")
        assert w["whistler_type"] == "UNIT_TYPE_DEPARTMENT"
        raised = await eventually(lambda: figures(settings),
                                  lambda f: f["level/2"][0] == before["level/2"][0] + 1
                                  and f["whistle/department"][0] == before["whistle/department"][0] + 1, timeout=90)
        # raised and blown, not settled yet: counted, within their limits, no outcome yet
        assert raised["level/2"][1:] == before["level/2"][1:]
        assert raised["whistle/department"][1:] == before["whistle/department"][1:]

        await post(dp02, f"{base(settings)}/whistles/{w['whistle_id']}/report-in", {"note": "已到场"}, f"{tid}/r")
        await post(dp01, f"{base(settings)}/whistles/{w['whistle_id']}/close",
                   {"resolved": True, "outcome": "联合执法，已清理"}, f"{tid}/wc")
        await post(office, f"{url}/close", {"level": 2, "resolved": True, "outcome": "已整改"}, f"{tid}/c2")

    def settled(f: dict[str, tuple[int, int, int, int, int]]) -> bool:
        return all(f[k][1:] == tuple(n + 1 for n in raised[k][1:]) for k in ("level/2", "whistle/department"))

    after = await eventually(lambda: figures(settings), settled, timeout=90)
    assert after["level/2"][0] == raised["level/2"][0]  # counted once, whatever the events that followed
    assert after["level/all"][0] >= after["level/2"][0] and after["whistle/all"][0] >= after["whistle/department"][0]
