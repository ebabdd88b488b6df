"""The access policy of every HTTP route and gRPC method, in one table.

``POLICY[service][operation]`` is the set of roles that may call the operation; the operation
of an HTTP route is ``"<METHOD> <path template>"`` (``"GET /cases/{ticket_id}"``), that of a
gRPC method its name (``"GetCase"``). Anything not listed is refused, and the authorization
matrix test (tests/e2e/test_access.py) fails for a route or method without an entry.

Roles say *what* someone may call; *which* records they see (scope: a unit its own cases, a
deputy their own submissions, a liaison officer their deputies) is checked by the service
next to its data, answering "not found" outside the scope.

Health, ``/metrics``, the OpenAPI documents and gRPC health and reflection are open and do
not appear here.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OFFICE = "office"  # 区12345热线办: the whole district
    UNIT = "unit"  # a handling unit (承办单位): its own tickets and cases, its own actions
    DEPUTY = "deputy"  # an NPC deputy (人大代表): own submissions and what is shared with them
    LIAISON = "liaison"  # 人大联络: the deputies it manages
    LEADER = "leader"  # read-only figures and reports, no personal data
    VIEWER = "viewer"  # read-only figures and reports, no personal data
    ADMIN = "admin"  # responsibility list, directory, deputy registry, policies
    SYSTEM = "system"  # the platform's own services (consumers, timers); never in a token


PEOPLE = frozenset(Role) - {Role.SYSTEM}
SCOPE_CLAIM = {Role.UNIT: "unit_id", Role.DEPUTY: "deputy_id", Role.LIAISON: "officer_id"}  # whom the role acts for

OFFICE, UNIT, DEPUTY, LIAISON, LEADER, VIEWER, ADMIN = (
    Role.OFFICE, Role.UNIT, Role.DEPUTY, Role.LIAISON, Role.LEADER, Role.VIEWER, Role.ADMIN)
FIGURES = frozenset({OFFICE, LEADER, VIEWER, ADMIN})  # read-only figures, no personal data
AUDITORS = frozenset({OFFICE, ADMIN})

# The audit trail every service keeps (hotline/audit.py).
_AUDIT = {"GET /audit": AUDITORS}

POLICY: dict[str, dict[str, frozenset[Role]]] = {
    "intake": {
        "GET /tickets/{ticket_id}": frozenset({OFFICE, UNIT}),  # unit: tickets it handles
        "GET /tickets": frozenset({OFFICE}),
        "GetTicket": frozenset({OFFICE, UNIT}),
        **_AUDIT,
    },
    "routing": {
        "GET /assignments/{ticket_id}": frozenset({OFFICE, UNIT}),  # unit: its own assignments
        "POST /route": frozenset({OFFICE, ADMIN}),
        "GET /units": frozenset(PEOPLE),
        "GET /responsibilities": frozenset(PEOPLE),
        "Route": frozenset({OFFICE, ADMIN}),
        "GetAssignment": frozenset({OFFICE, UNIT}),
        # the office's desk (services/routing/desk.py): the office dispatches and decides
        "GET /queue": frozenset({OFFICE}),
        "ListQueue": frozenset({OFFICE}),
        "POST /tickets/{ticket_id}/dispatch": frozenset({OFFICE}),
        "Dispatch": frozenset({OFFICE}),
        "GET /returns": frozenset({OFFICE, UNIT}),  # unit: its own returns
        "ListReturns": frozenset({OFFICE, UNIT}),
        "POST /tickets/{ticket_id}/return-decision": frozenset({OFFICE}),
        "DecideReturn": frozenset({OFFICE}),
        "POST /tickets/{ticket_id}/recategorize": frozenset({OFFICE}),
        "Recategorize": frozenset({OFFICE}),
        "POST /tickets/{ticket_id}/sub-dispatch": frozenset({UNIT}),  # the street office handling it
        "SubDispatch": frozenset({UNIT}),
        "POST /tickets/{ticket_id}/joint-review": frozenset({OFFICE}),
        "OpenJointReview": frozenset({OFFICE}),
        "POST /tickets/{ticket_id}/joint-review/decision": frozenset({OFFICE}),
        "DecideJointReview": frozenset({OFFICE}),
        "GET /joint-reviews": frozenset({OFFICE, ADMIN}),  # 联席研判列表 (open / decided)
        "ListJointReviews": frozenset({OFFICE, ADMIN}),
        "GET /list-items/{rule_id}": frozenset(PEOPLE),
        "GET /list-items": frozenset(PEOPLE),
        "GetListItem": frozenset(PEOPLE),
        "ListListItems": frozenset(PEOPLE),
        "PUT /list-items/{rule_id}": frozenset({OFFICE, ADMIN}),  # admin and office edit the list
        "UpsertListItem": frozenset({OFFICE, ADMIN}),
        **_AUDIT,
    },
    "supervision": {
        "GET /cases/{ticket_id}": frozenset({OFFICE, UNIT}),  # unit: cases where it is primary or assisting
        "GET /cases": frozenset({OFFICE, UNIT}),  # unit: its own
        "GetCase": frozenset({OFFICE, UNIT, LEADER}),  # leader: reads the cases the search finds
        "ListCases": frozenset({OFFICE, UNIT}),
        "GET /case-search": frozenset({OFFICE, UNIT, LEADER}),  # 案件查询 (search.py): a unit its own cases
        "GET /reminders": frozenset({OFFICE, UNIT}),  # 事前提醒 (reminder_board.py): a unit its own (issue #22)
        # The case lifecycle (issue 8). Which unit may do what (the primary replies, an assisting unit
        # contributes) is checked by the state machine (services/supervision/cases/lifecycle.py).
        "GET /cases/{ticket_id}/history": frozenset({OFFICE, UNIT}),
        # the actions the caller may take now (services/supervision/cases/actions.py): what the workbench renders
        "GET /cases/{ticket_id}/actions": frozenset({OFFICE, UNIT, LEADER}),
        "GetCaseHistory": frozenset({OFFICE, UNIT, LEADER}),
        **{f"POST /cases/{{ticket_id}}/{path}": frozenset({UNIT}) for path in (
            "sign-off", "contacts", "reply", "extension", "park", "progress", "return", "contribution")},
        "POST /cases/{ticket_id}/resume": frozenset({UNIT, OFFICE}),  # 恢复办理 of a parked case (issue #22)
        "Resume": frozenset({UNIT, OFFICE}),
        "DecidePark": frozenset({OFFICE}),
        **{f"POST /cases/{{ticket_id}}/{path}": frozenset({OFFICE}) for path in (
            "extension/decision", "review", "redo-decision", "assists/{unit_id}/waive",
            "callback", "park/decision")},  # 回访 of a deputy's ticket the deputy did not rate (issue #22)
        **dict.fromkeys(("SignOff", "RecordContact", "Reply", "RequestExtension", "Park", "ReportProgress",
                         "RequestReturn", "Contribute"), frozenset({UNIT})),
        **dict.fromkeys(("DecideExtension", "Review", "DecideRedo", "WaiveAssist"), frozenset({OFFICE})),
        # 直接答复 from the knowledge base (issue 25, docs/knowledge.md): the office answers a consultation
        "POST /cases/{ticket_id}/direct-answer": frozenset({OFFICE}),
        "DirectAnswer": frozenset({OFFICE}),
        "GET /warnings": frozenset({OFFICE, LEADER}),  # 预警
        "GET /warnings/{warning_id}": frozenset({OFFICE, LEADER}),
        "GET /warnings/{warning_id}/letter": frozenset({OFFICE, LEADER}),  # 预警函
        # 时限政策 as a versioned policy (hotline/policies.py): the office and leaders read it, admins save it
        "GET /policies/sla_policy": frozenset({OFFICE, ADMIN, LEADER}),
        "GET /policies/sla_policy/versions": frozenset({OFFICE, ADMIN, LEADER}),
        "GET /policies/sla_policy/versions/{version}": frozenset({OFFICE, ADMIN, LEADER}),
        "PUT /policies/sla_policy": frozenset({ADMIN}),
        # 预警规则 as a versioned policy (hotline/policies.py): the office and admins read and edit it
        "GET /policies/warning_rules": frozenset({OFFICE, ADMIN, LEADER}),
        "GET /policies/warning_rules/versions": frozenset({OFFICE, ADMIN, LEADER}),
        "GET /policies/warning_rules/versions/{version}": frozenset({OFFICE, ADMIN, LEADER}),
        "PUT /policies/warning_rules": frozenset({OFFICE, ADMIN}),
        # 督办 levels, meetings, merges and whistles (services/supervision/levels/: escalation*, whistles, merging);
        # level 1 is the system's; a unit sees the supervision of its cases and the whistles it raised or is
        # summoned to; the pure modules check which unit may do what.
        "GET /cases/{ticket_id}/supervision": frozenset({OFFICE, LEADER, UNIT}),
        "GET /cases/{ticket_id}/supervision/letter": frozenset({OFFICE, LEADER, UNIT}),  # 督办函
        "GetSupervision": frozenset({OFFICE, LEADER, UNIT}),
        **{f"POST /cases/{{ticket_id}}/{path}": frozenset({OFFICE, LEADER}) for path in (
            "supervision", "supervision/close")},
        **dict.fromkeys(("RaiseSupervision", "CloseSupervision"), frozenset({OFFICE, LEADER})),
        **{f"POST /cases/{{ticket_id}}/{path}": frozenset({OFFICE}) for path in (
            "supervision/visits", "supervision/joint", "meeting")},
        **dict.fromkeys(("RecordVisit", "SetJointSupervision", "ScheduleMeeting"), frozenset({OFFICE})),
        "POST /cases/{ticket_id}/meeting/outcome": frozenset({OFFICE, UNIT}),  # unit: the primary
        "RecordMeeting": frozenset({OFFICE, UNIT}),
        "POST /merges": frozenset({OFFICE}),  # 并单
        "MergeTickets": frozenset({OFFICE}),
        "GET /cases/{ticket_id}/merge-suggestions": frozenset({OFFICE}),
        "POST /recurring-lists/{month}": frozenset({OFFICE}),  # 屡办不成
        "GET /recurring-lists/{month}": frozenset({OFFICE, LEADER}),
        "POST /recurring-lists/{month}/items/{digest}/resolution": frozenset({OFFICE}),
        "GenerateRecurringList": frozenset({OFFICE}),
        "GetRecurringList": frozenset({OFFICE, LEADER}),
        "ResolveRecurringItem": frozenset({OFFICE}),
        "POST /whistles": frozenset({UNIT, OFFICE}),  # 吹哨: a street office (or the office naming the street)
        "BlowWhistle": frozenset({UNIT, OFFICE}),
        "POST /whistles/{whistle_id}/report-in": frozenset({UNIT}),  # 报到: a summoned unit
        "ReportIn": frozenset({UNIT}),
        "POST /whistles/{whistle_id}/close": frozenset({UNIT, OFFICE}),
        "CloseWhistle": frozenset({UNIT, OFFICE}),
        "GET /whistles": frozenset({OFFICE, LEADER, UNIT}),
        "GET /whistles/{whistle_id}": frozenset({OFFICE, LEADER, UNIT}),
        **dict.fromkeys(("GetWhistle", "ListWhistles"), frozenset({OFFICE, LEADER, UNIT})),
        # 公文流转 (services/supervision/levels/circulation*.py): the office sends, the addressee unit acknowledges
        # and answers; a unit sees only its own letters
        "POST /letters": frozenset({OFFICE}),
        "GET /letters": frozenset({OFFICE, LEADER, UNIT}),
        "GET /letters/{letter_id}": frozenset({OFFICE, LEADER, UNIT}),
        "GET /letters/{letter_id}/document": frozenset({OFFICE, LEADER, UNIT}),
        "POST /letters/{letter_id}/acknowledgement": frozenset({UNIT}),
        "POST /letters/{letter_id}/answer": frozenset({UNIT}),
        "GET /warnings/{warning_id}/special-report": frozenset({OFFICE, LEADER}),  # 舆情预警专报
        # 约谈 (services/supervision/levels/talks.py): the office records; a unit reads its own
        "POST /talks": frozenset({OFFICE}),
        "POST /talks/{talk_id}/follow-up": frozenset({OFFICE}),
        "GET /talks": frozenset({OFFICE, LEADER, UNIT}),
        "GET /talks/{talk_id}": frozenset({OFFICE, LEADER, UNIT}),
        **_AUDIT,
    },
    "deputy_liaison": {
        # Registry (issue 12): admin and liaison officers (a liaison officer: the deputies it manages)
        "POST /deputies": frozenset({ADMIN, LIAISON}),
        "POST /deputies/import": frozenset({ADMIN, LIAISON}),
        "GET /deputies": frozenset({ADMIN, LIAISON, OFFICE}),  # liaison: its deputies
        "GET /deputies/{deputy_id}": frozenset({ADMIN, LIAISON, DEPUTY, OFFICE}),  # deputy: self; liaison: own
        "POST /liaison-officers": frozenset({ADMIN}),
        "GET /liaison-officers": frozenset({ADMIN, OFFICE}),
        # Submissions and their follow-up: a deputy their own, a liaison officer its deputies'
        "POST /submissions": frozenset({DEPUTY}),
        "GET /submissions/{submission_id}": frozenset({DEPUTY, LIAISON, OFFICE}),
        "GET /submissions/{submission_id}/timeline": frozenset({DEPUTY, LIAISON, OFFICE}),
        "POST /submissions/{submission_id}/rating": frozenset({DEPUTY}),
        "POST /submissions/{submission_id}/escalation": frozenset({DEPUTY}),
        "GET /deputies/{deputy_id}/submissions": frozenset({DEPUTY, LIAISON, OFFICE}),
        # Monthly lists (每月问题清单) and whistle meetings (吹哨会议)
        "POST /monthly-lists": frozenset({OFFICE, ADMIN}),
        "GET /deputies/{deputy_id}/monthly-lists/{month}": frozenset({DEPUTY, LIAISON, OFFICE}),
        "GET /deputies/{deputy_id}/monthly-lists/{month}/document": frozenset({DEPUTY, LIAISON, OFFICE}),
        "POST /deputies/{deputy_id}/monthly-lists/{month}/items/{item_id}/adoption": frozenset({DEPUTY}),
        "POST /whistle-meetings/invitations": frozenset({OFFICE}),
        "GET /deputies/{deputy_id}/invitations": frozenset({DEPUTY, LIAISON, OFFICE}),
        # Figures of deputy work (no personal data)
        "GET /statistics": FIGURES | {LIAISON},
        "SubmitProblem": frozenset({DEPUTY}),
        **_AUDIT,
    },
    "metrics": {
        "GET /summary": FIGURES,
        "GET /daily": FIGURES,
        "GetSummary": FIGURES,
        "GET /kpis": FIGURES | {UNIT},  # unit: its own figures only
        "GetKpis": FIGURES | {UNIT},
        "GET /reports": FIGURES,
        "POST /reports": frozenset({OFFICE, ADMIN}),  # generating a report is the office's
        "GET /reports/{report_id}/{fmt}": FIGURES,
        "GET /bulletins/enterprise/{week}": FIGURES,
        "POST /holidays/{year}/{name}/roster": frozenset({OFFICE}),  # 值班表 (phones: office and leaders read)
        "GET /holidays/{year}/{name}/plan": frozenset({OFFICE, LEADER}),
        "GET /holidays/{year}/{name}/report": FIGURES,  # 涉企诉求一周一通报 (names units, no personal data)
        "ListReports": FIGURES,
        "GET /exports/cases/{fmt}": FIGURES | {UNIT},  # unit: its own cases; addresses masked but for office/unit
        # 知识库 (issue 25, docs/knowledge.md): units and the office read and search, the office edits articles;
        # a unit asks for the similar cases of its own cases only (resolved cases come masked, without contact)
        "GET /knowledge/articles": frozenset({OFFICE, UNIT, ADMIN}),
        "GET /knowledge/articles/{article_id}": frozenset({OFFICE, UNIT, ADMIN}),
        "GET /knowledge/articles/{article_id}/versions": frozenset({OFFICE, UNIT, ADMIN}),
        "PUT /knowledge/articles/{article_id}": frozenset({OFFICE, ADMIN}),
        "GET /knowledge/search": frozenset({OFFICE, UNIT}),
        "GET /knowledge/cases/{ticket_id}/similar": frozenset({OFFICE, UNIT}),
        **_AUDIT,
    },
}


def roles(service: str, operation: str) -> frozenset[Role] | None:
    """The roles allowed to call ``operation`` of ``service``; None when it has no policy."""
    return POLICY.get(service, {}).get(operation)
