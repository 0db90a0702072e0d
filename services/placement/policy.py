"""Which resource and action each route of the placement service is about. Who may do what to
which resource (grants, scopes, protected fields) stays central: shared/web/policy.py."""

from __future__ import annotations

from shared.web.policy import Action, Resource, RouteRule, rule

ROUTES: dict[tuple[str, str], RouteRule] = {
    ("POST", "/v1/children"): rule(Resource.child, Action.write),
    ("POST", "/v1/children/lookup"): rule(Resource.child, Action.read),
    ("GET", "/v1/children/{child_id}"): rule(Resource.child, Action.read, "child_id"),
    ("PATCH", "/v1/children/{child_id}"): rule(Resource.child, Action.write, "child_id"),
    ("POST", "/v1/placements"): rule(Resource.placement, Action.write),
    ("GET", "/v1/placements"): rule(Resource.placement, Action.read),
    ("GET", "/v1/placements/{placement_id}"): rule(Resource.placement, Action.read, "placement_id"),
    ("PATCH", "/v1/placements/{placement_id}"): rule(Resource.placement, Action.write, "placement_id"),
    ("POST", "/v1/placements/{placement_id}/end"): rule(Resource.placement, Action.write, "placement_id"),
    ("POST", "/v1/placements/{placement_id}/move"): rule(Resource.placement, Action.write, "placement_id"),
    ("POST", "/v1/imports"): rule(Resource.placement, Action.write),
    ("GET", "/v1/placements/{placement_id}/snapshot"): rule(Resource.placement_snapshot, Action.read, "placement_id"),
    ("GET", "/v1/pupil-keys"): rule(Resource.pupil_keys, Action.read),
}
