"""Which resource and action each route of the school service is about. Who may do what to
which resource (grants, scopes, protected fields) stays central: shared/web/policy.py."""

from __future__ import annotations

from shared.web.policy import Action, Resource, RouteRule, rule

ROUTES: dict[tuple[str, str], RouteRule] = {
    ("POST", "/v1/school-plans"): rule(Resource.school_plan, Action.write),
    ("GET", "/v1/school-plans/{plan_id}"): rule(Resource.school_plan, Action.read, "plan_id"),
    ("POST", "/v1/school-starts"): rule(Resource.school_start, Action.write),
    ("GET", "/v1/school-starts"): rule(Resource.school_start, Action.read),
    ("GET", "/v1/school-starts/{start_id}"): rule(Resource.school_start, Action.read, "start_id"),
    ("PATCH", "/v1/school-starts/{start_id}"): rule(Resource.school_start, Action.write, "start_id"),
    ("POST", "/v1/school-starts/{start_id}/withdraw"): rule(Resource.school_start, Action.write, "start_id"),
    ("POST", "/v1/imports"): rule(Resource.school_start, Action.write),
    ("POST", "/v1/school-ends"): rule(Resource.school_end, Action.write),
    ("GET", "/v1/school-ends/{end_id}"): rule(Resource.school_end, Action.read, "end_id"),
    ("GET", "/v1/placements/{placement_id}/schooling"): rule(Resource.schooling, Action.read, "placement_id"),
    ("GET", "/v1/reports/school-starts/rows"): rule(Resource.report_rows, Action.read),
}
