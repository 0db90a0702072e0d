"""Which resource and action each route of the health service is about. Who may do what to
which resource (grants, scopes, protected fields) stays central: shared/web/policy.py."""

from __future__ import annotations

from shared.web.policy import Action, Resource, RouteRule, rule

ROUTES: dict[tuple[str, str], RouteRule] = {
    ("POST", "/v1/examinations"): rule(Resource.examination, Action.write),
    ("GET", "/v1/examinations"): rule(Resource.examination, Action.read),
    ("GET", "/v1/examinations/{examination_id}"): rule(Resource.examination, Action.read, "examination_id"),
    ("POST", "/v1/examinations/{examination_id}/outcome"): rule(Resource.examination, Action.write, "examination_id"),
    ("POST", "/v1/imports"): rule(Resource.examination, Action.write),
    ("POST", "/v1/examinations/{examination_id}/rebook"): rule(Resource.examination, Action.write, "examination_id"),
}
