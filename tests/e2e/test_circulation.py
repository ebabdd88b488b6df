"""End to end: letters circulate (公文流转, issue 24) and talks with units are recorded (约谈).
Supervision and the workbench run as processes on the accelerated clock (a simulated day in ~14
real seconds), with a database of their own.

A received ticket with a 舆情 keyword raises a warning; the office sends its warning letter (预警函)
to one street office and to another, and a 舆情预警专报 to a third, each numbered in the register
with a deadline to answer. The first unit acknowledges and answers through the API (a bad
attachment refused, other units not seeing its letter); the second through the workbench's
forms; the third does not answer, and its letter shows overdue in the register and on the
office's supervision board.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline import pb
from hotline.envelope import Event
from hotline.kafka import producer as kafka_producer
from hotline.kafka import publish
from hotline.settings import Settings
from hotline.v1 import events_pb2, ticket_pb2
from hotline_dev import infra
from hotline_dev.launcher import ServiceProcess, drop_namespace, settings_for, start_services, stop_services
from tests.support import eventually, http

pytestmark = pytest.mark.e2e

SPEED = 6_000  # simulated seconds per real second


@pytest.fixture(scope="module")
def simulated(test_env: dict[str, str], topics: list[str], log_dir: Path) -> Iterator[tuple[Settings, str]]:
    real_start = datetime.now(UTC)
    env = {**test_env, "HOTLINE_CLOCK__START": real_start.isoformat(), "HOTLINE_CLOCK__SPEED": str(SPEED),
           "HOTLINE_CLOCK__REAL_START": real_start.isoformat(),
           "HOTLINE_MONGO__DATABASE_PREFIX": test_env["HOTLINE_MONGO__DATABASE_PREFIX"] + "_circ",
           # its own topics too: a second supervision on the session's topics would join the session
           # supervision's consumer groups, take its records and publish accelerated-clock events there
           "HOTLINE_TOPICS__PREFIX": test_env["HOTLINE_TOPICS__PREFIX"] + "circ."}
    settings = settings_for(env)
    infra.ensure_topics(settings)
    procs = start_services(["supervision"], settings, env, log_dir)
    workbench = ServiceProcess("workbench", settings, env, log_dir)
    workbench.start()
    try:
        workbench.wait_ready(60)
        yield settings, f"http://{settings.bind_host}:{settings.ports.workbench_http}"
    finally:
        workbench.stop()
        stop_services(procs.values())
        drop_namespace(settings)


async def signed_in(base: str, role: str, **scope: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    page = await client.get("/login")  # the sign-in page sets the browser's CSRF cookie and names its token
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert token, page.text
    client.headers["X-CSRF-Token"] = token.group(1)  # as the workbench's scripts send it (issue #19)
    r = await client.post("/login/dev", data={"role": role, **scope})
    assert r.status_code == 303 and "hotline_session" in r.cookies, r.text
    return client


def flash(r: httpx.Response) -> str:
    match = re.search(r'id="flash">([^<]*)<', r.text)
    return match.group(1) if match else ""


async def test_a_warning_letter_is_acknowledged_answered_and_an_unanswered_one_is_overdue(
    simulated: tuple[Settings, str],
) -> None:
    settings, workbench = simulated
    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}"
    tid = f"CIRC-{uuid.uuid4().hex[:8]}"
    ticket = ticket_pb2.Ticket(ticket_id=tid, ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title="噪音扰民",
                               content="夜间施工噪音，再不管就找媒体曝光", address="中华路1号",
                               received_at=pb.ts(datetime.now(UTC)))
    producer = kafka_producer(settings)
    await producer.start()
    try:
        await publish(producer, [Event(settings.topics.name("ticket_events"), tid,
                                       events_pb2.TicketReceived(ticket=ticket), f"{tid}/received")], "test")
    finally:
        await producer.stop()

    async with http(settings, "office") as office, http(settings, "unit", unit_id="ST01") as st01, \
            http(settings, "unit", unit_id="ST03") as st03, http(settings, "leader") as leader:
        async def ours() -> list[dict[str, Any]]:
            r = await office.get(f"{base}/warnings", params={"limit": 500})
            assert r.status_code == 200, r.text
            return [x for x in r.json()["warnings"] if tid in x["ticket_ids"] and x["kind"] == "keyword"]

        warning = (await eventually(ours, bool, timeout=60))[0]
        wid = warning["warning_id"]

        async def send(kind: str, unit: str) -> dict[str, Any]:
            r = await office.post(f"{base}/letters", json={"kind": kind, "ref": wid, "unit_id": unit, "answer_days": 1},
                                  headers={"Idempotency-Key": f"{tid}-{kind}-{unit}"})
            assert r.status_code == 200, r.text
            return dict(r.json())

        a, b, c = (await send("warning_letter", "ST01"), await send("warning_letter", "ST02"),
                   await send("sentiment_report", "ST03"))
        numbers = [x["number"] for x in (a, b, c)]
        assert all(re.fullmatch(r"区热线(预警函|舆情专报)〔\d{4}〕\d+号", n) for n in numbers), numbers
        assert [x["sequence"] for x in (a, b, c)] == [a["sequence"], a["sequence"] + 1, a["sequence"] + 2]
        assert a["state"] == "LETTER_STATE_SENT" and a["answer_due"] > a["sent_at"] and a["kind_name"] == "预警函"
        again = await office.post(f"{base}/letters", json={"kind": "warning_letter", "ref": wid, "unit_id": "ST01"},
                                  headers={"Idempotency-Key": uuid.uuid4().hex})
        assert again.status_code == 409 and a["number"] in again.text  # one letter per (kind, about, unit)
        assert (await office.post(f"{base}/letters", json={"kind": "warning_letter", "ref": wid, "unit_id": "XX9"},
                                  headers={"Idempotency-Key": uuid.uuid4().hex})).status_code == 400
        assert (await st01.post(f"{base}/letters", json={"kind": "warning_letter", "ref": wid, "unit_id": "ST01"},
                                headers={"Idempotency-Key": uuid.uuid4().hex})).status_code == 403

        # the first unit: through the API
        mine = (await st01.get(f"{base}/letters")).json()["letters"]
        assert [x["letter_id"] for x in mine] == [a["letter_id"]]
        assert (await st03.get(f"{base}/letters/{a['letter_id']}")).status_code == 404
        document = await st01.get(f"{base}/letters/{a['letter_id']}/document")
        assert document.status_code == 200 and a["number"] in document.text and tid in document.text
        r = await st01.post(f"{base}/letters/{a['letter_id']}/acknowledgement", headers={"Idempotency-Key": "ack-1"})
        assert r.status_code == 200 and r.json()["state"] == "LETTER_STATE_ACKNOWLEDGED", r.text
        assert (await st01.post(f"{base}/letters/{a['letter_id']}/acknowledgement",
                                headers={"Idempotency-Key": "ack-2"})).status_code == 409
        r = await st01.post(f"{base}/letters/{a['letter_id']}/answer", headers={"Idempotency-Key": "answer-0"},
                            json={"answer": "已核查", "attachments": ["ftp://files/x.pdf"]})
        assert r.status_code == 400 and "http(s)" in r.text
        r = await st01.post(f"{base}/letters/{a['letter_id']}/answer", headers={"Idempotency-Key": "answer-1"},
                            json={"answer": "已核查，施工单位已停工整改。",
                                  "attachments": [{"uri": "https://files.district.gov.cn/st01/zg.pdf",
                                                   "name": "整改.pdf"}]})
        assert r.status_code == 200, r.text
        answered = r.json()
        assert answered["state"] == "LETTER_STATE_ANSWERED" and answered["attachments"][0]["name"] == "整改.pdf"
        assert answered["answered_by"]["unit_id"] == "ST01" and not answered["overdue"]

        # the second unit: through the workbench
        unit = await signed_in(workbench, "unit", unit_id="ST02")
        try:
            page = await unit.get("/letters")
            assert page.status_code == 200 and b["number"] in page.text and a["number"] not in page.text
            key = re.search(r'name="key" value="([0-9a-f]+)-ack-', page.text)
            assert key, page.text
            r = await unit.post(f"/letters/{b['letter_id']}/acknowledge", data={"key": f"{key[1]}-ack"},
                                follow_redirects=True)
            assert "已签收" in flash(r) and b["number"] in flash(r), r.text
            r = await unit.post(f"/letters/{b['letter_id']}/answer", follow_redirects=True, data={
                "key": f"{key[1]}-answer", "answer": "已约谈施工单位，夜间停止施工。",
                "attachments": "https://files.district.gov.cn/st02/yt.jpg\n"})
            assert "已回复" in flash(r), r.text
        finally:
            await unit.aclose()
        r = await office.get(f"{base}/letters/{b['letter_id']}")
        assert r.json()["state"] == "LETTER_STATE_ANSWERED" and r.json()["answer"] == "已约谈施工单位，夜间停止施工。"
        assert r.json()["attachments"][0]["uri"] == "https://files.district.gov.cn/st02/yt.jpg"

        # the third does not answer: overdue once its deadline passes (the accelerated clock)
        async def overdue() -> list[str]:
            r = await office.get(f"{base}/letters", params={"state": "overdue"})
            return [x["letter_id"] for x in r.json()["letters"]]

        late = await eventually(overdue, lambda ids: c["letter_id"] in ids, timeout=90, every=1)
        assert a["letter_id"] not in late and b["letter_id"] not in late
        report = await leader.get(f"{base}/warnings/{wid}/special-report")
        assert report.status_code == 200 and "舆情预警专报" in report.text and c["number"] in report.text
        desk = await signed_in(workbench, "office")
        try:
            board = (await desk.get("/office/supervision")).text
            overdue_table = board[board.index('id="overdue-letters"'):]
            assert c["number"] in overdue_table and a["number"] not in overdue_table
            register = (await desk.get("/letters", params={"state": "overdue"})).text
            assert c["number"] in register and "逾期未回复" in register
        finally:
            await desk.aclose()

        # a talk with the unit at the bottom of the ranking (约谈), and its follow-up
        talk = {"unit_id": "ST03", "held_at": "2026-12-03T15:00:00+08:00", "reason": "未按时回复函件，考核得分居黑榜",
                "ranking_period": "2026-11", "ranking_list": "black", "rank": 24, "score": 71.5,
                "attendees": ["街道分管领导"], "outcome": "限期整改", "follow_up": "每周报送进展",
                "follow_up_due": "2026-12-31"}
        r = await office.post(f"{base}/talks", json=talk, headers={"Idempotency-Key": f"{tid}-talk"})
        assert r.status_code == 200 and r.json()["ranking_list_name"] == "黑榜", r.text
        talk_id = r.json()["talk_id"]
        assert (await st03.post(f"{base}/talks", json=talk, headers={"Idempotency-Key": "x"})).status_code == 403
        assert [t["talk_id"] for t in (await st03.get(f"{base}/talks")).json()["talks"]] == [talk_id]
        assert (await st01.get(f"{base}/talks/{talk_id}")).status_code == 404
        r = await office.post(f"{base}/talks/{talk_id}/follow-up", json={"note": "已按期回复全部函件"},
                              headers={"Idempotency-Key": f"{tid}-follow"})
        assert r.status_code == 200 and r.json()["follow_up_done"] == "已按期回复全部函件", r.text
        assert (await leader.get(f"{base}/talks/{talk_id}")).json()["follow_up_done_at"]
