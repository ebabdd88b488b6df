"""Deputies' tickets close (issue #22). The city never calls back on a deputy's ticket (``RD-…``):
the deputy's own rating of the result (满意 / 基本满意 / 不满意, DeputyRated on the deputy topic)
is the case's evaluation (回访), applied by the lifecycle exactly as a city evaluation is (a
satisfied or basically satisfied rating closes the case, 不满意 leaves the office its redo
decision). When the deputy has not rated within the SLA policy's ``deputy_callback`` limit after
the result was reported, the office records its own callback through
``POST /cases/{ticket_id}/callback``. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hotline import pb
from hotline.calendar import WorkCalendar
from hotline.commands import Illegal, Invalid
from hotline.v1 import case_pb2, deputy_pb2, events_pb2, lifecycle_pb2
from services.supervision.cases.sla import Limits, SlaClock

DEPUTY_PREFIX = "RD-"  # deputy liaison's ticket ids (services/deputy_liaison/core.py TICKET_PREFIX)
RATINGS = {"满意": case_pb2.SATISFACTION_SATISFIED, "基本满意": case_pb2.SATISFACTION_BASICALLY_SATISFIED,
           "不满意": case_pb2.SATISFACTION_UNSATISFIED}
RESOLUTIONS = {"解决": case_pb2.RESOLUTION_RESOLVED, "已解决": case_pb2.RESOLUTION_RESOLVED,
               "部分解决": case_pb2.RESOLUTION_PARTLY_RESOLVED, "未解决": case_pb2.RESOLUTION_UNRESOLVED}


def is_deputy_ticket(case: events_pb2.Case) -> bool:
    return case.ticket_id.startswith(DEPUTY_PREFIX) and not case.city_ticket_id


def rating_evaluation(rated: deputy_pb2.DeputyRated) -> lifecycle_pb2.CityEvaluation | None:
    """The evaluation a deputy's rating is, or None for a rating that is not one of the three.
    The resolution is the deputy's when named (解决 / 部分解决 / 未解决), else 未解决 for 不满意 and
    解决 otherwise. One evaluation id per rating: a redelivered rating is the same evaluation."""
    satisfaction = RATINGS.get(rated.rating)
    if satisfaction is None or not rated.ticket_id:
        return None
    resolution = RESOLUTIONS.get(rated.resolution) or (
        case_pb2.RESOLUTION_UNRESOLVED if satisfaction == case_pb2.SATISFACTION_UNSATISFIED
        else case_pb2.RESOLUTION_RESOLVED)
    at = rated.occurred_at
    return lifecycle_pb2.CityEvaluation(
        evaluation_id=f"deputy/{rated.ticket_id}/{at.seconds}.{at.nanos // 1_000_000:03d}",
        city_ticket_id=rated.ticket_id, satisfaction=satisfaction, resolution=resolution,
        comment=f"人大代表评价：{rated.rating}" + (f"；{rated.comment}" if rated.comment else ""),
        evaluated_at=at)


def callback_due(case: events_pb2.Case, limits: Limits, calendar: WorkCalendar) -> datetime:
    """From when the office may record the callback: the deputy_callback limit after reporting."""
    return limits.due(SlaClock.DEPUTY_CALLBACK, pb.dt(case.reported_at), calendar)


def office_callback(case: events_pb2.Case | None, body: lifecycle_pb2.CityEvaluation, limits: Limits | None,
                    calendar: WorkCalendar, now: datetime) -> lifecycle_pb2.CityEvaluation:
    """The office's callback (回访) of a deputy's ticket the deputy did not rate in time."""
    if case is None or limits is None:
        raise Invalid("no such case")
    if not is_deputy_ticket(case):
        raise Illegal("the city calls back on its own tickets (回访); the office records callbacks of deputies' "
                      "tickets only")
    if case.state != events_pb2.CASE_STATE_REPORTED or not case.HasField("reported_at"):
        raise Illegal("a callback is recorded once the result is reported (已回传) and not yet evaluated")
    due = callback_due(case, limits, calendar)
    if now < due:
        raise Illegal(f"the deputy may rate the result until {due.isoformat()}; the office calls back after that")
    if body.satisfaction == case_pb2.SATISFACTION_UNSPECIFIED:
        raise Invalid("satisfaction is required")
    if body.resolution == case_pb2.RESOLUTION_UNSPECIFIED and body.satisfaction != case_pb2.SATISFACTION_NOT_REACHED:
        raise Invalid("resolution is required unless the deputy was not reached")
    return lifecycle_pb2.CityEvaluation(
        evaluation_id=f"office-callback/{case.ticket_id}/{case.dispatch_round}/{case.redo_round}",
        city_ticket_id=case.ticket_id, result_id=case.result_id, satisfaction=body.satisfaction,
        resolution=body.resolution, comment=body.comment or "热线办回访", evaluated_at=pb.ts(now))


def json_body(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a callback body (resolution, satisfaction, comment); ids and times are the platform's."""
    return {k: v for k, v in body.items() if k in ("resolution", "satisfaction", "comment")}
